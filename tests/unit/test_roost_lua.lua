-- test_roost_lua.lua: unit tests of lua/roost.lua outside Dovecot.
--
-- Run: lua5.4 tests/unit/test_roost_lua.lua [path/to/roost.lua]
-- A fake `dovecot` table stands in for the auth process and its HTTP client, so
-- the JSON parser, settings and the answer-to-passdb-result mapping are checked
-- without a running Dovecot. The rig checks the same script in real Dovecot.

local script = arg[1] or "lua/roost.lua"
local failures, checks = 0, 0

local prefix = ""	-- the transport under test, in failure messages
local function check(cond, what)
	checks = checks + 1
	if not cond then
		failures = failures + 1
		io.stderr:write("FAIL: " .. prefix .. what .. "\n")
	end
end

-- fake Dovecot ----------------------------------------------------------------

local answers = {}	-- url prefix -> { status, body [, content type] }
local requests = {}	-- every request made: { url, headers }
local logged = {}	-- every dovecot.i_error/i_warning line
local infos = {}	-- every dovecot.i_info line
local client_opts
local client_calls = 0
-- "2.4": options by 2.4's names, an unknown one raises (as 2.4 does);
-- "2.3": any table is taken, unknown keys are silently ignored (as 2.3 does)
local fake_version = "2.4"
local OPTS_24 = {
	connect_timeout = true, request_timeout = true,
	request_absolute_timeout = true, request_max_attempts = true,
	user_agent = true,
}

local function log_line(line)
	logged[#logged + 1] = line
end

dovecot = {
	auth = {
		PASSDB_RESULT_INTERNAL_FAILURE = -1,
		PASSDB_RESULT_USER_UNKNOWN = -3,
		PASSDB_RESULT_OK = 1,
	},
	i_error = log_line,
	i_warning = log_line,
	i_info = function(line) infos[#infos + 1] = line end,
	http = {
		client = function(opts)
			client_calls = client_calls + 1
			if fake_version == "2.4" then
				for k in pairs(opts) do
					if not OPTS_24[k] then
						error("Invalid HTTP client setting: " .. k ..
						    " is unknown setting")
					end
				end
			end
			client_opts = opts
			return {
				request = function(_, r)
					local rec = { url = r.url, headers = {} }
					requests[#requests + 1] = rec
					return {
						add_header = function(_, k, v) rec.headers[k] = v end,
						submit = function()
							for prefix, a in pairs(answers) do
								if type(a) == "function" then
									a = a(rec)
								end
								if r.url:sub(1, #prefix) == prefix then
									return {
										status = function() return a[1] end,
										payload = function() return a[2] end,
										header = function(_, name)
											if name:lower() == "content-type" then
												return a[3] or "application/json"
											end
											return ""
										end,
									}
								end
							end
							return {
								status = function() return 9003 end,
								payload = function() return "" end,
								header = function() return "" end,
							}
						end,
					}
				end,
			}
		end,
	},
}
-- 2.4 has it, 2.3 has not
dovecot.doveadm_client = {}

-- fake lua-socket -------------------------------------------------------------
-- Serves the same `answers` as the fake HTTP client, over fake keep-alive
-- connections: a request is recorded when sent, and answered from `answers`
-- at that moment. An answer may carry options as its fourth element:
--   close = true       "Connection: close" in the answer
--   drop = true        the server closes silently after answering
--   hang = true        the server never answers (receive times out)
--   raw = "bytes"      these bytes instead of a well-formed answer
-- A host with no answer refuses connections, and a connection to it that is
-- still open finds the server gone (EOF) at the next request.

local clock = 1000
local sock_stats
local function reset_sock_stats()
	sock_stats = { connects = 0, closes = 0, timeouts = {}, nodelay = 0 }
end
reset_sock_stats()

local function answer_for(url, rec)
	for prefix, a in pairs(answers) do
		if type(a) == "function" then
			a = a(rec)
		end
		if url:sub(1, #prefix) == prefix then
			return a
		end
	end
	return nil
end

local REASONS = { [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized",
    [403] = "Forbidden", [404] = "Not Found", [500] = "Internal Server Error",
    [502] = "Bad Gateway", [503] = "Service Unavailable" }

local function http_answer(a)
	local o = a[4] or {}
	if o.raw then
		return o.raw
	end
	local body = a[2] or ""
	return string.format("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n" ..
	    "Content-Length: %d\r\n%s\r\n%s", a[1], REASONS[a[1]] or "X",
	    a[3] or "application/json", #body,
	    o.close and "Connection: close\r\n" or "", body)
end

local fake_socket = {
	_VERSION = "LuaSocket fake",
	gettime = function() return clock end,
	tcp = function()
		local conn = { inbuf = "", eof = false }
		function conn:settimeout(t)
			self.timeout = t
			sock_stats.timeouts[#sock_stats.timeouts + 1] = t
			return 1
		end
		function conn:connect(host, port)
			sock_stats.connects = sock_stats.connects + 1
			sock_stats.last_connect_timeout = self.timeout
			self.base = "http://" .. host .. (port == 80 and "" or
			    ":" .. port) .. "/"
			if answer_for(self.base, { url = self.base, headers = {} }) == nil then
				return nil, "connection refused"
			end
			return 1
		end
		function conn:setoption(name, v)
			if name == "tcp-nodelay" and v then
				sock_stats.nodelay = sock_stats.nodelay + 1
			end
			return 1
		end
		function conn:send(data)
			if self.closed then
				return nil, "closed", 0
			end
			local method, path = data:match('^(%u+) (%S+) HTTP/1%.1\r\n')
			local hdrs = {}
			for k, v in data:gmatch('\n([^:\r\n]+): ([^\r\n]*)') do
				hdrs[k] = v
			end
			local rec = { url = "http://" .. (hdrs.Host or "?") .. path,
			    headers = hdrs, method = method, raw = data }
			requests[#requests + 1] = rec
			if self.gone then
				self.inbuf, self.eof = "", true
				return #data
			end
			local a = answer_for(rec.url, rec)
			if a == nil then
				self.inbuf, self.eof = "", true
			elseif a[4] and a[4].hang then
				self.hang = true
			else
				self.inbuf = self.inbuf .. http_answer(a)
				if a[4] and a[4].drop then
					self.gone = true
				end
			end
			return #data
		end
		function conn:receive(pat)
			if self.closed then
				return nil, "closed"
			end
			if self.hang then
				clock = clock + (self.timeout or 0)
				return nil, "timeout", ""
			end
			if pat == "*l" then
				local i = self.inbuf:find("\n", 1, true)
				if i == nil then
					local rest = self.inbuf
					self.inbuf = ""
					return nil, "closed", rest
				end
				local line = self.inbuf:sub(1, i - 1):gsub("\r$", "")
				self.inbuf = self.inbuf:sub(i + 1)
				return line
			end
			if #self.inbuf >= pat then
				local d = self.inbuf:sub(1, pat)
				self.inbuf = self.inbuf:sub(pat + 1)
				return d
			end
			local rest = self.inbuf
			self.inbuf = ""
			return nil, "closed", rest
		end
		function conn:close()
			if not self.closed then
				sock_stats.closes = sock_stats.closes + 1
			end
			self.closed = true
			return 1
		end
		return conn
	end,
}
package.loaded["socket.core"] = fake_socket
-- socket.unix: the same fake connections; the path is remembered and the
-- answers are those for http://localhost/ (the Host roost.lua sends)
local unix_paths = {}
package.loaded["socket.unix"] = {
	stream = function()
		local conn = fake_socket.tcp()
		local tcp_connect = conn.connect
		function conn:connect(path)
			unix_paths[#unix_paths + 1] = path
			return tcp_connect(self, "localhost", 80)
		end
		return conn
	end,
}

local function new_req(user, protocol)
	return {
		user = user,
		protocol = protocol,
		passdb = {},
		log_warning = function() end,
	}
end

local roost = dofile(script)
local P = dovecot.auth

-- JSON ---------------------------------------------------------------------

local o, err = roost.json_decode('{"user":"a\\u00e9\\ud83d\\ude00\\n","port":"143","n":20143,'
    .. '"replica":null,"t":true,"f":false}')
check(o ~= nil, "valid object parses: " .. tostring(err))
check(o and o.user == "a\xc3\xa9\xf0\x9f\x98\x80\n", "escapes decode to UTF-8")
check(o and o.n.number == "20143", "numbers kept as text")
check(o and o.replica == roost.null, "null is the null marker")
check(o and o.t == true and o.f == false, "booleans")
check(roost.json_decode(' { } ') ~= nil, "empty object with blanks")
for _, bad in ipairs({
	'', '[]', '{', '{"a":1', '{"a":1}x', '{"a":{"b":1}}', '{"a":[1]}',
	'{"a":"x\ny"}', '{"a":01}', '{"a":1,}', '{a:1}', '{"a":1 "b":2}',
	'{"a":1,"a":2}', '{"a":"\\x"}', '{"a":"\\ud800"}', '{"a":tru}',
	-- the same through the fast path for "key":"value" members
	'{"a":"x","a":"y"}', '{"a":"x",}', '{"a":"x"}x', '{"a":"x"', '{"a":"x"]',
	'{"a":"x\ty"}', '{"a":"x","b"}',
}) do
	check(roost.json_decode(bad) == nil, "refused: " .. bad)
end

-- settings -----------------------------------------------------------------

check(not pcall(script_init, { urls = "" }), "no URL is an error")
check(not pcall(script_init, { urls = "ftp://x" }), "bad URL scheme is an error")
check(not pcall(script_init, { bogus = "1" }), "unknown setting is an error")
check(not pcall(script_init, { request_timeout = "3 weeks" }), "bad time is an error")
check(not pcall(script_init, { lookup_token_file = "/nonexistent/roost" }),
    "unreadable token file is an error")

-- lookups ------------------------------------------------------------------
-- The same promises through either transport: T names the one under test.

local T
local function init(t)
	t = t or {}
	if t.transport == nil then
		t.transport = T
	end
	return script_init(t)
end

local function body(t)
	local parts = {}
	for k, v in pairs(t) do
		parts[#parts + 1] = string.format('"%s":%s', k,
		    v == "null" and "null" or '"' .. v .. '"')
	end
	return "{" .. table.concat(parts, ",") .. "}"
end

local ok_body = body({ user = "a", backend = "b1", host = "h1", hostip = "127.0.0.11",
    port = "10143", replica = "null" })
local HTML = "text/html"

local function lookup_suite(transport)
	T = transport
	prefix = transport .. ": "

	check(init({ urls = "http://c1:1,http://c2:2/", lookup_token = "sekrit",
	    tag = "eu" }) == 0, "script_init with settings")
	if T == "dovecot" then
		check(client_opts and client_opts.connect_timeout == "1000ms" and
		    client_opts.request_max_attempts == 1, "2.4 client options used")
	end

	answers = { ["http://c1:1/"] = { 200, ok_body } }
	requests = {}
	local r, f = auth_passdb_lookup(new_req("Al ice+x@ex.com", "imap"))
	check(r == P.PASSDB_RESULT_OK, "200 gives OK")
	check(f.proxy == "y" and f.host == "h1" and f.hostip == "127.0.0.11" and
	    f.port == "10143" and f.nopassword == "y" and f.user_roost_backend == "b1",
	    "proxy fields")
	check(requests[1].url == "http://c1:1/v1/lookup?user=Al%20ice%2Bx%40ex.com&protocol=imap&tag=eu",
	    "lookup URL: " .. requests[1].url)
	check(requests[1].headers.Authorization == "Bearer sekrit", "bearer token sent")

	answers = { ["http://c1:1/"] = { 200, body({ user = "a", backend = "b1", host = "h1",
	    hostip = "", port = "110" }) } }
	r, f = auth_passdb_lookup(new_req("a", "pop3"))
	check(r == P.PASSDB_RESULT_OK and f.hostip == nil, "empty hostip left out")

	answers = { ["http://c1:1/"] = { 200, '{"user":"a","backend":"b1","host":"h1","port":143}' } }
	r, f = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_OK and f.port == "143", "numeric port formatted as integer")
	check(f.ssl == nil and f.starttls == nil, "no tls in the answer: plain connection")

	-- tls: yes is ssl=yes, starttls is starttls=yes; both verify the certificate
	-- (a value of any-cert would not), and a value we do not know is no route
	local function tls_answer(tls)
		answers = { ["http://c1:1/"] = { 200, body({ user = "a", backend = "b1",
		    host = "h1", port = "993", tls = tls }) } }
		return auth_passdb_lookup(new_req("a", "imap"))
	end
	r, f = tls_answer("yes")
	check(r == P.PASSDB_RESULT_OK and f.ssl == "yes" and f.starttls == nil,
	    "tls yes gives ssl=yes")
	r, f = tls_answer("starttls")
	check(r == P.PASSDB_RESULT_OK and f.starttls == "yes" and f.ssl == nil,
	    "tls starttls gives starttls=yes")
	r, f = tls_answer("no")
	check(r == P.PASSDB_RESULT_OK and f.ssl == nil and f.starttls == nil,
	    "tls no gives neither")
	r, f = tls_answer("any-cert")
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, "unknown tls value is refused")

	-- first controller down: the second answers, and the first is skipped for a while
	answers = { ["http://c2:2/"] = { 200, ok_body } }
	requests = {}
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_OK and #requests == 2, "failover to the second URL")
	requests = {}
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_OK and #requests == 1 and requests[1].url:match("^http://c2"),
	    "a controller that failed is tried last")

	answers = {}
	r, f = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE and f:match("no controller answered"),
	    "nobody answers: internal failure")

	answers = { ["http://c"] = { 500, '{"error":"boom"}' } }
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, "5xx: internal failure")

	answers = { ["http://c"] = { 503, '{"error":"busy","reason":"moving"}' } }
	requests = {}
	r, f = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE and f == "user is being moved" and #requests == 1,
	    "503 moving: internal failure, no other controller asked")

	-- What the first of two controllers answers, and what comes of it: the
	-- login's result, how many requests it took, whether something was logged,
	-- and whether the first URL is still asked first by the next lookup.
	-- roostd sends 200, 400, 401, 403 and 503 (JSON with its own fields) on
	-- /v1/lookup; anything else is not roostd speaking (a wrong URL, a reverse
	-- proxy, an older API) and must never end a login as "user unknown".
	for _, c in ipairs({
		{ "404 HTML from a reverse proxy", { 404, "<html>Not Found</html>", HTML },
		    "ok", 2, true, false },
		{ "404 JSON without roostd's shape", { 404, '{"message":"Not Found"}' },
		    "ok", 2, true, false },
		{ "404 from roostd's router (wrong path)", { 404, '{"error":"no such endpoint"}' },
		    "ok", 2, true, false },
		{ "500", { 500, '{"error":"boom"}' }, "ok", 2, true, false },
		{ "502 HTML from a reverse proxy", { 502, "<html>Bad Gateway</html>", HTML },
		    "ok", 2, true, false },
		{ "non-JSON 200", { 200, "<html>hello</html>", HTML }, "ok", 2, true, false },
		{ "200 route as text/html", { 200, ok_body, HTML }, "ok", 2, true, false },
		{ "200 JSON without a route", { 200, '{"status":"ok"}' }, "ok", 2, true, false },
		{ "400 not from roostd", { 400, "<html>Bad Request</html>", HTML },
		    "ok", 2, true, false },
		{ "400 from roostd (setup mistake)",
		    { 400, '{"error":"must be one of imap","field":"protocol"}' },
		    "tempfail", 1, true, true },
		{ "503 no_backend from roostd",
		    { 503, '{"error":"no backend","reason":"no_backend"}' }, "ok", 2, false, true },
		{ "503 not from roostd", { 503, "<html>Service Unavailable</html>", HTML },
		    "ok", 2, true, false },
		{ "401 from roostd", { 401, '{"error":"bearer token required"}' },
		    "ok", 2, true, true },
		{ "403 from roostd", { 403, '{"error":"invalid token"}' }, "ok", 2, true, true },
	}) do
		local what, answer, want, nreq, want_log, first_stays = table.unpack(c)
		init({ urls = "http://c1:1,http://c2:2" })
		answers = { ["http://c1:1/"] = answer, ["http://c2:2/"] = { 200, ok_body } }
		requests, logged = {}, {}
		r, f = auth_passdb_lookup(new_req("a", "imap"))
		if want == "ok" then
			check(r == P.PASSDB_RESULT_OK and type(f) == "table" and f.host == "h1",
			    what .. ": the second URL routes the login")
		else
			check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, what .. ": temporary failure")
		end
		check(r ~= P.PASSDB_RESULT_USER_UNKNOWN, what .. ": never user unknown")
		check(#requests == nreq, what .. ": " .. #requests .. " requests, want " .. nreq)
		check((#logged > 0) == want_log, what .. ": logged " .. #logged .. " lines")
		answers["http://c1:1/"] = { 200, ok_body }
		requests = {}
		auth_passdb_lookup(new_req("a", "imap"))
		check((requests[1].url:match("^http://c1") ~= nil) == first_stays,
		    what .. ": next lookup asks " .. requests[1].url:match("^http://c%d"))
	end

	-- every controller answers like a reverse proxy: a temporary failure
	init({ urls = "http://c1:1,http://c2:2" })
	answers = { ["http://c"] = { 404, "<html>Not Found</html>", HTML } }
	requests = {}
	r, f = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE and #requests == 2 and
	    f:match("no controller answered"), "404 everywhere: temporary failure")

	answers = { ["http://c"] = { 200, '{"user":"a","backend":"b1","host":"h1","port":"0"}' } }
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, "port 0 is not a route")
	answers = { ["http://c"] = { 200, '<html>' } }
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, "non-JSON 200 is not a route")

	answers = { ["http://c"] = { 200, ok_body } }
	requests = {}
	auth_passdb_lookup(new_req("a", "sieve"))
	auth_passdb_lookup(new_req("a", "managesieve"))
	auth_passdb_lookup({ user = "a", service = "doveadm", passdb = {},
	    log_warning = function() end })
	check(requests[1].url:match("protocol=sieve%f[^%w]") and
	    requests[2].url:match("protocol=sieve%f[^%w]") and
	    requests[3].url:match("protocol=doveadm%f[^%w]"),
	    "protocol names mapped (2.3 req.service too)")
	r = auth_passdb_lookup(new_req("a", "smtp"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE, "unknown protocol refused")

	-- tag from a request field; nopassword off
	init({ urls = "http://c1:1", tag_field = "passdb:roost_tag", nopassword = "no" })
	requests = {}
	local req = new_req("a", "imap")
	req.passdb = { roost_tag = "t-1" }
	r, f = auth_passdb_lookup(req)
	check(requests[1].url:match("&tag=t%-1$") and f.nopassword == nil and
	    requests[1].headers.Authorization == nil, "tag_field, nopassword=no, no token")

	-- a rotated token file is picked up when the controller refuses the old one
	local tokfile = os.tmpname()
	local function settoken(t)
		local f = assert(io.open(tokfile, "w"))
		f:write(t .. "\n")
		f:close()
	end
	settoken("old")
	init({ urls = "http://c1:1", lookup_token_file = tokfile })
	answers = { ["http://c1:1/"] = function(rec)
		if rec.headers.Authorization == "Bearer new" then
			return { 200, ok_body }
		end
		return { 403, '{"error":"bad token"}' }
	end }
	requests = {}
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_INTERNAL_FAILURE and #requests == 1,
	    "refused token and no new one: internal failure, no retry")
	settoken("new")
	requests = {}
	r = auth_passdb_lookup(new_req("a", "imap"))
	check(r == P.PASSDB_RESULT_OK and #requests == 2 and
	    requests[2].headers.Authorization == "Bearer new", "rotated token file re-read")
	os.remove(tokfile)

	prefix = ""
end

lookup_suite("dovecot")
lookup_suite("socket")

-- the socket transport -------------------------------------------------------

local OK, TEMP = P.PASSDB_RESULT_OK, P.PASSDB_RESULT_INTERNAL_FAILURE
local function first_asked()
	requests = {}
	auth_passdb_lookup(new_req("a", "imap"))
	return requests[1] and requests[1].url:match("^http://(c%d)")
end

-- which transport runs, said once at start
client_calls = 0
infos = {}
check(script_init({ urls = "http://c1:1" }) == 0 and #infos == 1 and
    infos[1]:match("transport socket") ~= nil,
    "auto with lua-socket: socket, logged once: " .. tostring(infos[1]))
check(client_calls == 0, "socket: no dovecot.http.client made")
infos = {}
check(script_init({ urls = "http://c1:1,https://c2:2" }) == 0 and
    infos[1]:match("transport dovecot") and infos[1]:match("TLS"),
    "auto with an https URL: dovecot, saying why: " .. tostring(infos[1]))
check(not pcall(script_init, { urls = "https://c1:1", transport = "socket" }),
    "socket with an https URL is an error")
check(not pcall(script_init, { transport = "udp" }), "unknown transport is an error")
infos = {}
check(script_init({ urls = "http://c1:1", transport = "dovecot" }) == 0 and
    infos[1] == "roost: lookup transport dovecot (dovecot.http.client)",
    "dovecot asked for: " .. tostring(infos[1]))

-- one keep-alive connection carries every lookup
script_init({ urls = "http://c1:1,http://c2:2", connect_timeout = "250ms",
    request_timeout = "2s", transport = "socket", lookup_token = "tok" })
answers = { ["http://c1:1/"] = { 200, ok_body } }
reset_sock_stats()
requests = {}
local all_ok = true
for _ = 1, 3 do
	all_ok = auth_passdb_lookup(new_req("a", "imap")) == OK and all_ok
end
check(all_ok and sock_stats.connects == 1 and #requests == 3 and
    sock_stats.closes == 0, "three lookups over one connection (" ..
    sock_stats.connects .. " connects)")
check(sock_stats.last_connect_timeout == 0.25, "connect_timeout bounds the connect")
local over = false
for i = 2, #sock_stats.timeouts do
	over = over or sock_stats.timeouts[i] > 2
end
check(not over, "request_timeout bounds every send and receive")
check(sock_stats.nodelay == 1, "TCP_NODELAY set")
check(requests[1].raw == "GET /v1/lookup?user=a&protocol=imap HTTP/1.1\r\n" ..
    "Host: c1:1\r\nUser-Agent: roost.lua\r\nAccept: application/json\r\n" ..
    "Authorization: Bearer tok\r\n\r\n", "the request: " .. requests[1].raw)

-- "Connection: close": the next lookup connects anew
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
answers = { ["http://c1:1/"] = { 200, ok_body, nil, { close = true } } }
reset_sock_stats()
check(auth_passdb_lookup(new_req("a", "imap")) == OK and
    auth_passdb_lookup(new_req("a", "imap")) == OK and
    sock_stats.connects == 2 and sock_stats.closes == 2,
    "Connection: close honoured (" .. sock_stats.connects .. " connects)")

-- a server that drops the connection after each answer without saying so
-- (or restarted, or timed out the idle connection): the request goes once
-- more on a new connection, nothing is logged, the controller stays first
answers = { ["http://c1:1/"] = { 200, ok_body, nil, { drop = true } },
    ["http://c2:2/"] = { 200, body({ user = "a", backend = "b2", host = "h2",
    port = "143" }) } }
reset_sock_stats()
auth_passdb_lookup(new_req("a", "imap"))
requests, logged = {}, {}
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h1" and #requests == 2 and
    requests[2].url:match("^http://c1") and sock_stats.connects == 2 and
    #logged == 0, "dropped keep-alive connection: asked again on a new one " ..
    "(" .. #requests .. " requests, " .. #logged .. " logged)")
check(first_asked() == "c1", "after a dropped connection c1 stays first")

-- a new connection closed before any answer is no answer: not repeated
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
answers["http://c1:1/"] = { 0, "", nil, { raw = "" } }
requests = {}
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h2" and #requests == 2, "closed without an answer: " ..
    "asked once, then the next URL (" .. #requests .. " requests)")
check(first_asked() == "c2", "a URL that closed without an answer goes last")

-- a hanging controller: the request timeout, the connection closed, the
-- next URL; no second try on a reused connection that timed out
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket",
    request_timeout = "2s", down_retry = "0" })
answers["http://c1:1/"] = { 200, ok_body }
auth_passdb_lookup(new_req("a", "imap"))
answers["http://c1:1/"] = { 0, "", nil, { hang = true } }
reset_sock_stats()
requests, logged = {}, {}
local t0 = clock
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h2" and #requests == 2 and
    requests[1].url:match("^http://c1"), "hanging c1: routed by c2 (" ..
    #requests .. " requests)")
check(clock - t0 <= 2, "hanging c1 cost at most request_timeout (" ..
    (clock - t0) .. " s)")
check(sock_stats.closes == 1 and sock_stats.connects == 1,
    "the timed-out connection is closed, not reused")
check(#logged == 1 and logged[1]:match("no answer %(timeout%)"),
    "the hang is logged: " .. tostring(logged[1]))
-- a late answer can never be read by a later login: c1 answers again, on a
-- new connection
answers["http://c1:1/"] = { 200, ok_body }
reset_sock_stats()
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h1" and sock_stats.connects == 1,
    "after a timeout c1 is asked on a new connection")

-- answers we cannot frame: no route from them, the connection closed
local JSON_HDR = "Content-Type: application/json\r\n"
for _, c in ipairs({
	{ "not HTTP", "garbage\r\n\r\n" },
	{ "bad Content-Length", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "Content-Length: 1x\r\n\r\n" .. ok_body },
	{ "two Content-Lengths", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "Content-Length: " .. #ok_body .. "\r\nContent-Length: " .. #ok_body ..
	    "\r\n\r\n" .. ok_body },
	{ "chunked", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "Transfer-Encoding: chunked\r\n\r\n" ..
	    string.format("%x", #ok_body) .. "\r\n" .. ok_body .. "\r\n0\r\n\r\n" },
	{ "body cut short", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "Content-Length: " .. (#ok_body + 5) .. "\r\n\r\n" .. ok_body },
	{ "headers cut short", "HTTP/1.1 200 OK\r\n" .. JSON_HDR },
	{ "a huge answer", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "Content-Length: 70000\r\n\r\n" .. string.rep(" ", 70000) },
	{ "a header line without colon", "HTTP/1.1 200 OK\r\n" .. JSON_HDR ..
	    "oops\r\nContent-Length: " .. #ok_body .. "\r\n\r\n" .. ok_body },
}) do
	script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
	answers["http://c1:1/"] = { 0, "", nil, { raw = c[2] } }
	reset_sock_stats()
	requests, logged = {}, {}
	r, f = auth_passdb_lookup(new_req("a", "imap"))
	check(r == OK and f.host == "h2" and #requests == 2 and #logged == 1,
	    c[1] .. ": c1 gave no route, c2 did (" .. #requests .. " requests)")
	check(sock_stats.closes >= 1, c[1] .. ": the connection is closed")
end

-- a close-delimited HTTP/1.0 answer (a reverse proxy) is read to its end
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
answers["http://c1:1/"] = { 0, "", nil, { raw = "HTTP/1.0 404 Not Found\r\n" ..
    "Content-Type: text/html\r\n\r\n<html>Not Found</html>" } }
logged = {}
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h2" and #logged == 1 and
    logged[1]:match("status 404 is not a roostd answer"),
    "HTTP/1.0 404 without length: foreign: " .. tostring(logged[1]))
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
answers["http://c1:1/"] = { 0, "", nil, { raw = "HTTP/1.0 200 OK\r\n" ..
    JSON_HDR .. "\r\n" .. ok_body } }
reset_sock_stats()
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h1" and sock_stats.closes == 1,
    "HTTP/1.0 200 without length: read to the close, then closed")

-- roostd's unix socket (listen_unix): unix:/PATH
infos = {}
check(script_init({ urls = "unix:/run/roost/roostd.sock,http://c2:2" }) == 0 and
    infos[1]:match("transport socket") and infos[1]:match("unix socket"),
    "a unix: URL: socket transport, logged: " .. tostring(infos[1]))
answers = { ["http://localhost/"] = { 200, ok_body } }
unix_paths, requests = {}, {}
reset_sock_stats()
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h1" and unix_paths[1] == "/run/roost/roostd.sock" and
    requests[1].headers.Host == "localhost" and sock_stats.nodelay == 0,
    "lookup over the unix socket (" .. tostring(unix_paths[1]) .. ")")
auth_passdb_lookup(new_req("a", "imap"))
check(#unix_paths == 1 and #requests == 2, "the unix connection is kept")
answers = { ["http://c2:2/"] = { 200, body({ user = "a", backend = "b2",
    host = "h2", port = "143" }) } }
logged = {}
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == OK and f.host == "h2" and logged[1] and
    logged[1]:match("unix:/run/roost/roostd.sock"),
    "the unix socket gone: the next URL, the log names the socket")
check(not pcall(script_init, { urls = "unix:/x.sock", transport = "dovecot" }),
    "a unix: URL with transport dovecot is an error")
check(not pcall(script_init, { urls = "unix:x.sock" }),
    "a unix: URL must be an absolute path")
check(not pcall(script_init, { urls = "unix:/x.sock,https://c1:1" }),
    "a unix: URL beside an https one is an error")
local saved_unix = package.loaded["socket.unix"]
package.loaded["socket.unix"] = nil
package.preload["socket.unix"] = function() error("module 'socket.unix' not found") end
check(not pcall(script_init, { urls = "unix:/x.sock" }),
    "a unix: URL without socket.unix is an error")
package.loaded["socket.unix"] = saved_unix
package.preload["socket.unix"] = nil

-- every controller gone: a temporary failure, never a guess
script_init({ urls = "http://c1:1,http://c2:2", transport = "socket" })
answers = {}
r, f = auth_passdb_lookup(new_req("a", "imap"))
check(r == TEMP and f:match("connect: connection refused"),
    "nothing listens: temporary failure: " .. tostring(f))


-- the HTTP client ---------------------------------------------------------

-- 2.4: one client, by 2.4's names; an option 2.4 refuses is an error at
-- script_init, never retried with other names
client_calls = 0
script_init({ urls = "http://c1:1", connect_timeout = "250ms", request_timeout = "2s",
    transport = "dovecot" })
check(client_calls == 1 and client_opts.connect_timeout == "250ms" and
    client_opts.request_timeout == "2000ms",
    "2.4: one client made, by 2.4's names (" .. client_calls .. " calls)")
OPTS_24.request_max_attempts = nil
check(not pcall(script_init, { urls = "http://c1:1", transport = "dovecot" }),
    "2.4: an option the client refuses fails script_init")
OPTS_24.request_max_attempts = true

-- 2.3 calls script_init without arguments and ignores unknown options, so
-- the 2.3 names must be the right ones: connect_timeout_msecs is the connect
-- timeout (soft_connect_timeout_msecs only starts a parallel attempt)
-- (and without lua-socket: auto falls back to Dovecot's client)
fake_version = "2.3"
dovecot.doveadm_client = nil
client_calls = 0
package.loaded["socket.core"] = nil
package.preload["socket.core"] = function() error("module 'socket.core' not found") end
infos = {}
check(script_init() == 0, "2.3: script_init without arguments")
check(#infos == 1 and infos[1]:match("transport dovecot") and
    infos[1]:match("lua%-socket not loadable"),
    "auto without lua-socket: dovecot, and the log says why: " .. tostring(infos[1]))
check(client_calls == 1, "2.3: one client made (" .. client_calls .. " calls)")
check(client_opts.connect_timeout_msecs == 1000 and
    client_opts.request_timeout_msecs == 3000 and
    client_opts.soft_connect_timeout_msecs == nil and
    client_opts.max_attempts == 1 and client_opts.connect_timeout == nil,
    "2.3: connect_timeout_msecs, request_timeout_msecs, no 2.4 names")

io.write(string.format("%d checks, %d failed\n", checks, failures))
os.exit(failures == 0 and 0 or 1)
