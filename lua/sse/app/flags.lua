--- sse.app.flags: the demo hub's command-line syntax, without a host (the
-- luv hub's sse.app.main and the OpenResty demo hub read the same flags).
--
--   flags.parse({"--port", "8080", "--presence"}, FLAGS) -> {port = 8080, presence = true}
--
-- FLAGS is a list of {name, kind, help, default shown}: kind "string",
-- "int", "number" (>= 0), "list" (comma-separated) or "flag" (no value).
-- --name value and --name=value; a flag's key is its name with '_' for '-'.
local M = {}

--- parse(argv, flags) -> opts | nil, message | "help"
function M.parse(argv, FLAGS)
  local opts, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then return "help" end
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    local flag
    for _, f in ipairs(FLAGS) do if f[1] == name then flag = f end end
    if not flag then return nil, "unknown option " .. a end
    local key = name:gsub("-", "_")
    local v = inline
    if flag[2] == "flag" then
      if v ~= nil then return nil, "option --" .. name .. " takes no value" end
      v = true
    elseif v == nil then
      i = i + 1
      v = argv[i]
      if v == nil then return nil, "option --" .. name .. " needs a value" end
    end
    if flag[2] == "int" or flag[2] == "number" then
      local n = tonumber(v)
      if not n or (flag[2] == "int" and n ~= math.floor(n)) or n < 0 then
        return nil, ("--%s: %s expected, got '%s'"):format(name, flag[2] == "int" and "integer" or "number", v)
      end
      v = flag[2] == "int" and math.floor(n) or n
    elseif flag[2] == "list" then
      local list = {}
      for item in v:gmatch("[^,%s]+") do list[#list + 1] = item end
      v = list
    end
    opts[key] = v
    i = i + 1
  end
  return opts
end

return M
