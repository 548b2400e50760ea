-- An event catalogue for the demo hub: `sse-hub --catalogue examples/catalogue.lua`
-- (or lua5.4 examples/hub/server.lua --catalogue ...). Publishes must then be
-- one of these types with data of this shape (400 naming the field
-- otherwise), and GET /catalogue serves the JSON Schema clients generate
-- types from. The file returns the options of sse.catalogue.new.
return {
  title = "demo hub events",
  description = "What the demo hub's topics carry.",
  events = {
    message = { description = "plain text", data = "string" },
    headline = { description = "a news headline", data = { fields = {
      title = { type = "string", min_length = 1, max_length = 200 },
      url = "string?",
      priority = { enum = { "low", "normal", "high" }, optional = true },
    } } },
    price = { description = "a price tick", data = { fields = {
      symbol = { type = "string", min_length = 1, max_length = 12 },
      price = { type = "number", min = 0 },
      time = { type = "integer", min = 0, description = "Unix seconds" },
    } } },
    progress = { description = "a job's progress", data = { fields = {
      job = "string",
      done = { type = "number", min = 0, max = 1 },
      steps = { type = "array", optional = true, items = { fields = {
        name = "string", ok = "boolean" } } },
    } } },
  },
}
