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
-- It may also hold a list in its array part, { pattern = "^b1x%d+$", entry =
-- { backend = ... } }, for users named by their backend: a large user set
-- (100,000 names) as a few rules.  Dovecot runs a full Lua garbage collection
-- after every lookup, whose cost grows with what the script keeps: a table of
-- 100,000 entries made each login cost 35 ms, which no real static answer
-- pays.
-- Not for production: a table never changes, which is what Roost is for.

local table_path
local users = {}
-- BENCH_B_BARE_GET=1: bench/run writes static-options.lua with the lookup
-- URL, and every login also makes one plain GET to roostd (answer unused).
-- It splits what mode C costs over B into Dovecot's HTTP client and the rest.
local bare_get_url
local http_client
-- BENCH_B_BARE_SOCKET=1: instead, one plain GET /v1/health a login on a
-- connection the worker keeps (lua-socket, as roost.lua's socket
-- transport): what any lookup over a socket costs, with nothing parsed.
local bare_host, bare_port, bare_sock

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
	local ok, opts = pcall(dofile, script_dir() .. "/static-options.lua")
	if ok and type(opts) == "table" and opts.bare_socket then
		bare_host = opts.bare_socket.host
		bare_port = opts.bare_socket.port
	end
	if ok and type(opts) == "table" and opts.bare_get_url then
		bare_get_url = opts.bare_get_url
		-- 2.4 raises on 2.3's option names: that tells them apart
		local ok2, c = pcall(dovecot.http.client, {
		    request_timeout_msecs = 3000, max_attempts = 1 })
		http_client = ok2 and c or dovecot.http.client({
		    request_timeout = "3s", request_max_attempts = 1 })
	end
	return 0
end

function script_deinit()
end

-- One request and its whole answer; a broken connection is made anew at
-- the next login.
local function bare_roundtrip()
	if bare_sock == nil then
		local s = require("socket.core").tcp()
		s:settimeout(3)
		if s:connect(bare_host, bare_port) == nil then
			s:close()
			return
		end
		s:setoption("tcp-nodelay", true)
		bare_sock = s
	end
	local len = 0
	local ok = bare_sock:send("GET /v1/health HTTP/1.1\r\nHost: roostd\r\n\r\n")
	while ok do
		local line = bare_sock:receive("*l")
		if line == nil then
			ok = nil
		elseif line == "" then
			break
		else
			len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
		end
	end
	if ok and (len == 0 or bare_sock:receive(len) ~= nil) then
		return
	end
	bare_sock:close()
	bare_sock = nil
end

function auth_passdb_lookup(req)
	local PASSDB = dovecot.auth
	if bare_host ~= nil then
		bare_roundtrip()
	end
	local proto = req.protocol or req.service or ""
	if proto == "managesieve" then
		proto = "sieve"
	end
	if http_client ~= nil then
		local r = http_client:request({ method = "GET",
		    url = bare_get_url .. "?protocol=imap&user=" .. (req.user or "") })
		r:submit():payload()
	end
	local u = users[req.user or ""]
	if u == nil then
		for _, rule in ipairs(users) do
			if (req.user or ""):match(rule.pattern) then
				u = rule.entry
				break
			end
		end
	end
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
