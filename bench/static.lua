-- static.lua: the "physical limit" passdb for bench/run.
--
-- It answers like lua/roost.lua (proxy, host, hostip, port, nopassword,
-- user_roost_backend) but from a table in memory instead of an HTTP lookup,
-- so a proxy running it measures what Dovecot's proxy path costs on its own.
-- The login benchmark compares roost.lua + roostd against this: the ratio is
-- what asking roostd costs.
--
-- The table is made by bench/run at the start of a run from roostd's own
-- answers (GET /v1/lookup for every bench user), so both proxies send every
-- user to the same backend.  It is a Lua file returning
--   { ["user"] = { backend = "b1", host = "...", hostip = "...",
--                  ports = { imap = "21043", ... } }, ... }
-- read from ROOST_STATIC_TABLE, else static-table.lua next to this script.
-- Not for production: a table never changes, which is what Roost is for.

local table_path
local users = {}

local function script_dir()
	local src = debug.getinfo(1, "S").source
	if src:sub(1, 1) == "@" then
		return src:sub(2):match("^(.*)/[^/]*$") or "."
	end
	return "."
end

function script_init()
	table_path = os.getenv("ROOST_STATIC_TABLE")
	if table_path == nil or table_path == "" then
		table_path = script_dir() .. "/static-table.lua"
	end
	local t = dofile(table_path)
	if type(t) ~= "table" then
		error("static.lua: " .. table_path .. " does not return a table")
	end
	users = t
	return 0
end

function script_deinit()
end

function auth_passdb_lookup(req)
	local PASSDB = dovecot.auth
	local proto = req.protocol or req.service or ""
	if proto == "managesieve" then
		proto = "sieve"
	end
	local u = users[req.user or ""]
	if u == nil then
		return PASSDB.PASSDB_RESULT_USER_UNKNOWN, "static: unknown user"
	end
	local port = u.ports[proto]
	if port == nil then
		return PASSDB.PASSDB_RESULT_INTERNAL_FAILURE,
		    "static: no port for " .. proto
	end
	local fields = {
		proxy = "y",
		host = u.host,
		port = port,
		nopassword = "y",
		user_roost_backend = u.backend,
	}
	if u.hostip ~= "" then
		fields.hostip = u.hostip
	end
	return PASSDB.PASSDB_RESULT_OK, fields
end
