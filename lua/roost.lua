-- roost.lua: Dovecot auth passdb that asks roostd which backend serves a user.
--
-- Loaded by Dovecot proxies (2.3.19+ and 2.4) as a Lua passdb. For every login it
-- sends GET /v1/lookup to the first roostd that answers and returns the proxy
-- fields (proxy, host, hostip, port, and ssl or starttls for a backend reached
-- over TLS). It never guesses: when no controller gives a usable answer the
-- login gets a temporary failure, and an answer that did not come from roostd
-- (a wrong URL, a reverse proxy) never makes a user unknown.
--
-- Settings (key = value; see docs/dovecot.md):
--   urls                 comma-separated controller base URLs, tried in order
--                        (default http://127.0.0.1:8470); unix:/PATH is
--                        roostd's listen_unix socket (transport socket)
--   lookup_token_file    file whose first line is the lookup token
--   lookup_token         the token itself (prefer the file)
--   tag                  a fixed tag sent with every lookup
--   tag_field            take the tag from a request field instead: a variable
--                        such as "local_name", or "passdb:NAME" for a field a
--                        previous passdb returned
--   nopassword           yes (default): the proxy does not check the password,
--                        the backend does; no: for use after a real passdb
--   connect_timeout      per controller, default 1s (units ms or s)
--   request_timeout      per controller, default 3s
--   down_retry           seconds a controller that gave no roostd answer is
--                        tried only after the others, default 5
--   transport            how requests reach roostd: socket (one keep-alive
--                        connection per auth process, through lua-socket),
--                        dovecot (Dovecot's dovecot.http.client), or auto
--                        (default: socket when lua-socket loads and every
--                        URL is http://, else dovecot)
--
-- Dovecot 2.4 passes the settings as lua_settings { } to script_init(). Dovecot
-- 2.3 rejects unknown passdb args, so there every setting is read from the
-- environment as ROOST_<NAME> (set with import_environment). A key given both
-- ways takes the lua_settings value.

local roost = {}

local DEFAULTS = {
	urls = "http://127.0.0.1:8470",
	lookup_token_file = "",
	lookup_token = "",
	tag = "",
	tag_field = "",
	nopassword = "yes",
	connect_timeout = "1s",
	request_timeout = "3s",
	down_retry = "5",
	transport = "auto",
}

-- Dovecot's protocol names mapped to roostd's. ManageSieve logins arrive as
-- "sieve"; "managesieve" is accepted in case a build names the service so.
local PROTOCOLS = {
	imap = "imap",
	pop3 = "pop3",
	lmtp = "lmtp",
	submission = "submission",
	sieve = "sieve",
	managesieve = "sieve",
	doveadm = "doveadm",
}

local settings
local controllers = {}		-- { url, down_until, host, port, sock }
local http_client		-- dovecot.http.client, transport "dovecot"
local socket_lib		-- lua-socket, transport "socket"
local socket_unix		-- its socket.unix, for unix: URLs
local transport			-- "socket" or "dovecot"
local token = nil

-- JSON ---------------------------------------------------------------------

-- roostd answers with flat objects: string keys, and values that are strings,
-- numbers, true, false or null. Anything else (nesting, trailing bytes,
-- unescaped control characters, duplicate keys) is refused rather than
-- half-understood, because the answer decides where mail goes.

local function utf8_char(cp)
	if cp < 0x80 then
		return string.char(cp)
	elseif cp < 0x800 then
		return string.char(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f))
	elseif cp < 0x10000 then
		return string.char(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f),
		    0x80 | (cp & 0x3f))
	end
	return string.char(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f),
	    0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f))
end

local ESCAPES = {
	['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f',
	n = '\n', r = '\r', t = '\t',
}

local function json_string(s, i)
	-- s:sub(i, i) is the opening quote.  Most strings have no escape:
	-- one find, one sub.
	local j = s:find('["\\%c]', i + 1)
	if j ~= nil and s:byte(j) == 34 then
		return s:sub(i + 1, j - 1), j + 1
	end
	local out = {}
	i = i + 1
	while true do
		local j = s:find('["\\%c]', i)
		if j == nil then
			return nil, "unterminated string"
		end
		out[#out + 1] = s:sub(i, j - 1)
		local c = s:sub(j, j)
		if c == '"' then
			return table.concat(out), j + 1
		elseif c ~= '\\' then
			return nil, "control character in string"
		end
		local e = s:sub(j + 1, j + 1)
		if ESCAPES[e] then
			out[#out + 1] = ESCAPES[e]
			i = j + 2
		elseif e == 'u' then
			local hex = s:match('^%x%x%x%x', j + 2)
			if hex == nil then
				return nil, "bad \\u escape"
			end
			local cp = tonumber(hex, 16)
			i = j + 6
			if cp >= 0xd800 and cp <= 0xdbff then
				local lo = s:match('^\\u(%x%x%x%x)', i)
				lo = lo and tonumber(lo, 16)
				if lo == nil or lo < 0xdc00 or lo > 0xdfff then
					return nil, "bad surrogate pair"
				end
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00)
				i = i + 6
			elseif cp >= 0xdc00 and cp <= 0xdfff then
				return nil, "bad surrogate pair"
			end
			out[#out + 1] = utf8_char(cp)
		else
			return nil, "bad escape"
		end
	end
end

local json_null = setmetatable({}, { __tostring = function() return "null" end })
roost.null = json_null

-- Numbers are kept as their source text ({ number = "143" }): Lua 5.4 would
-- turn them into floats, and Dovecot reads a port of "143.0" as no port.
local function json_number(s, i)
	local int = s:match('^%-?%d+', i)
	if int == nil or int:match('^%-?0%d') then
		return nil, "bad number at byte " .. i
	end
	local j = i + #int
	local frac = s:match('^%.%d+', j) or ""
	j = j + #frac
	local exp = s:match('^[eE][%+%-]?%d+', j) or ""
	j = j + #exp
	return { number = int .. frac .. exp }, j
end

local function json_value(s, i)
	local b = s:byte(i)
	if b == 34 then				-- "
		return json_string(s, i)
	elseif b == 45 or (b ~= nil and b >= 48 and b <= 57) then -- - 0-9
		return json_number(s, i)
	elseif s:sub(i, i + 3) == "true" then
		return true, i + 4
	elseif s:sub(i, i + 4) == "false" then
		return false, i + 5
	elseif s:sub(i, i + 3) == "null" then
		return json_null, i + 4
	end
	return nil, "unexpected value at byte " .. i
end

-- The first byte at or after i that is not JSON white space (roostd sends
-- none: one byte compared, no pattern).
local function skip_ws(s, i)
	local b = s:byte(i)
	if b == 32 or b == 9 or b == 10 or b == 13 then
		return s:find('[^ \t\r\n]', i) or #s + 1
	end
	return i
end

function roost.json_decode(s)
	if type(s) ~= "string" then
		return nil, "no body"
	end
	local obj = {}
	local i = skip_ws(s, 1)
	if s:byte(i) ~= 123 then			-- {
		return nil, "not a JSON object"
	end
	i = skip_ws(s, i + 1)
	if s:byte(i) == 125 then			-- }
		i = i + 1
	else
		while true do
			-- the common member, "key":"value" without escapes or
			-- blanks, in one find; anything else below, byte by byte
			local _, e, fk, fv, sep = s:find(
			    '^"([^"\\%c]*)":"([^"\\%c]*)"([,}])', i)
			if e ~= nil then
				if obj[fk] ~= nil then
					return nil, "duplicate key " .. fk
				end
				obj[fk] = fv
				i = e + 1
				if sep == "}" then
					break
				end
				i = skip_ws(s, i)
				goto next
			end
			if s:byte(i) ~= 34 then			-- "
				return nil, "expected a key at byte " .. i
			end
			local key, v
			key, i = json_string(s, i)
			if key == nil then
				return nil, i
			end
			if obj[key] ~= nil then
				return nil, "duplicate key " .. key
			end
			i = skip_ws(s, i)
			if s:byte(i) ~= 58 then			-- :
				return nil, "expected ':' at byte " .. i
			end
			i = skip_ws(s, i + 1)
			v, i = json_value(s, i)
			if v == nil then
				return nil, i
			end
			obj[key] = v
			i = skip_ws(s, i)
			local c = s:byte(i)
			i = skip_ws(s, i + 1)
			if c == 125 then			-- }
				break
			elseif c ~= 44 then			-- ,
				return nil, "expected ',' or '}'"
			end
			::next::
		end
	end
	if i <= #s and s:find('[^ \t\r\n]', i) ~= nil then
		return nil, "trailing data after the object"
	end
	return obj
end

-- Settings -----------------------------------------------------------------

local function msecs(value, name)
	local n, unit = tostring(value):match('^%s*(%d+)%s*(%a*)%s*$')
	n = tonumber(n)
	if n == nil then
		error("roost: " .. name .. ": not a time: " .. tostring(value))
	end
	if unit == "ms" or unit == "msec" or unit == "msecs" then
		return n
	elseif unit == "" or unit == "s" or unit == "sec" or unit == "secs" then
		return n * 1000
	end
	error("roost: " .. name .. ": unknown unit " .. unit)
end

local function yesno(value, name)
	local v = tostring(value):lower()
	if v == "yes" or v == "y" or v == "true" or v == "1" then
		return true
	elseif v == "no" or v == "n" or v == "false" or v == "0" then
		return false
	end
	error("roost: " .. name .. ": expected yes or no, got " .. tostring(value))
end

local function trim(s)
	return (s:gsub('^%s+', ''):gsub('%s+$', ''))
end

local function read_token(path)
	local f, err = io.open(path, "r")
	if f == nil then
		return nil, err
	end
	local line = f:read("l")
	f:close()
	if line == nil or trim(line) == "" then
		return nil, path .. ": empty"
	end
	return trim(line)
end

function roost.configure(args)
	local raw = {}
	for k in pairs(DEFAULTS) do
		local v = args and args[k]
		if v == nil then
			v = os.getenv("ROOST_" .. k:upper())
		end
		raw[k] = v ~= nil and trim(tostring(v)) or DEFAULTS[k]
	end
	if args ~= nil then
		for k in pairs(args) do
			if DEFAULTS[k] == nil then
				error("roost: unknown setting " .. tostring(k))
			end
		end
	end

	local s = {
		tag = raw.tag,
		tag_field = raw.tag_field,
		nopassword = yesno(raw.nopassword, "nopassword"),
		connect_ms = msecs(raw.connect_timeout, "connect_timeout"),
		request_ms = msecs(raw.request_timeout, "request_timeout"),
		down_retry = tonumber(raw.down_retry:match('^%d+$') or "x"),
		urls = {},
	}
	if s.down_retry == nil then
		error("roost: down_retry: not a number of seconds")
	end
	s.transport = raw.transport:lower()
	if s.transport ~= "auto" and s.transport ~= "socket" and
	    s.transport ~= "dovecot" then
		error("roost: transport: want auto, socket or dovecot, got " ..
		    raw.transport)
	end
	if s.tag ~= "" and s.tag_field ~= "" then
		error("roost: set tag or tag_field, not both")
	end
	for u in raw.urls:gmatch('[^,%s]+') do
		if not u:match('^unix:') then
			u = u:gsub('/+$', '')
		end
		if u:match('^https?://[^/]+$') == nil and
		    u:match('^unix:/[^%c]+$') == nil then
			error("roost: urls: not a base URL: " .. u)
		end
		s.urls[#s.urls + 1] = u
	end
	if #s.urls == 0 then
		error("roost: urls: no controller URL")
	end
	s.token_file = raw.lookup_token_file
	s.token = raw.lookup_token
	if s.token ~= "" and s.token_file ~= "" then
		error("roost: set lookup_token or lookup_token_file, not both")
	end
	return s
end

-- Pick up a changed token file without a Dovecot reload: called again when a
-- controller refuses the token we hold. True when the token changed.
local function load_token()
	if settings.token ~= "" then
		token = settings.token
		return false
	elseif settings.token_file == "" then
		token = nil
		return false
	end
	local t, err = read_token(settings.token_file)
	if t == nil then
		dovecot.i_error("roost: lookup_token_file: " .. tostring(err))
		return false
	end
	local changed = t ~= token
	token = t
	return changed
end

-- 2.3 and 2.4 spell the client options differently, and 2.3 silently
-- ignores names it does not know: the version is told apart by what only 2.4
-- does (script_init gets the lua_settings table; dovecot.doveadm_client
-- exists), never by trying one spelling and swallowing its error, so a
-- refused option stops script_init with Dovecot's own message.
local function is_dovecot24(args)
	return type(args) == "table" or dovecot.doveadm_client ~= nil
end

local function new_http_client(s, v24)
	if v24 then
		return dovecot.http.client({
			connect_timeout = string.format("%dms", s.connect_ms),
			request_timeout = string.format("%dms", s.request_ms),
			request_absolute_timeout = string.format("%dms",
			    s.connect_ms + s.request_ms),
			request_max_attempts = 1,
			user_agent = "roost.lua",
		})
	end
	-- connect_timeout_msecs bounds the connect; soft_connect_timeout_msecs
	-- would only start a parallel attempt to another address
	return dovecot.http.client({
		connect_timeout_msecs = s.connect_ms,
		request_timeout_msecs = s.request_ms,
		request_absolute_timeout_msecs = s.connect_ms + s.request_ms,
		max_attempts = 1,
		max_connect_attempts = 1,
		user_agent = "roost.lua",
	})
end

-- Transports ---------------------------------------------------------------

-- Both transports answer ask(c, path) with status, body, content type; or
-- nil and why there was no answer.
--
-- "dovecot": dovecot.http.client. Its submit() is synchronous in Lua: every
-- request builds a private ioloop, moves the connection into it and tears it
-- down again (bench/PROFILING.md counts what that costs a login).
--
-- "socket": lua-socket, one HTTP/1.1 keep-alive connection per controller in
-- each auth process, one request at a time, never pipelined. Any error,
-- timeout or answer we cannot frame closes the connection, so a late answer
-- can never be read as the answer to a later login. Only a request sent on a
-- reused connection that the server had already closed (EOF or reset before
-- the first byte of an answer: roostd restarted, or dropped the idle
-- connection) is sent once more, on a new connection; a GET to
-- /v1/lookup may be repeated.

local function dovecot_ask(c, path)
	local r = http_client:request({ url = c.url .. path, method = "GET" })
	r:add_header("Accept", "application/json")
	if token ~= nil then
		r:add_header("Authorization", "Bearer " .. token)
	end
	local resp = r:submit()
	local status = resp:status()
	if status >= 9000 then
		return nil, "http client status " .. status
	end
	return status, resp:payload(), resp:header("Content-Type")
end

-- The answer headers sock_read looks at; it skips the others unparsed.
local HEADERS_READ = { ["content-length"] = true, ["content-type"] = true,
    ["transfer-encoding"] = true, connection = true }

-- roostd's answers are small; anything bigger is not one of them.
local MAX_BODY = 65536
local MAX_HEADERS = 64

local function sock_close(c)
	if c.sock ~= nil then
		c.sock:close()
		c.sock = nil
	end
end

-- One receive bounded by the request's deadline.
local function sock_recv(s, pattern, deadline)
	local left = deadline - socket_lib.gettime()
	if left <= 0 then
		return nil, "timeout"
	end
	s:settimeout(left)
	return s:receive(pattern)
end

-- Reads one answer. Returns status, body, content type, keep (the
-- connection may carry the next request); or nil, why, and whether any byte
-- of an answer arrived.
local function sock_read(s, deadline)
	local line, err = sock_recv(s, "*l", deadline)
	if line == nil then
		return nil, err, false
	end
	local minor, status = line:match('^HTTP/1%.([01]) (%d%d%d)[ \r]?')
	if status == nil then
		return nil, "not an HTTP answer", true
	end
	local keep = minor == "1"
	local len, ctype, chunked
	for n = 1, MAX_HEADERS + 1 do
		if n > MAX_HEADERS then
			return nil, "too many header lines", true
		end
		line, err = sock_recv(s, "*l", deadline)
		if line == nil then
			return nil, err, true
		end
		if line == "" or line == "\r" then
			break
		end
		local name, value = line:match('^([^:%s]+):[ \t]*(.*)$')
		if name == nil then
			return nil, "bad header line", true
		end
		name = name:lower()
		if HEADERS_READ[name] then
			-- blanks at the end (roostd sends none)
			local b = value:byte(-1)
			if b == 32 or b == 9 or b == 13 then
				value = value:match('^(.-)[ \t\r]*$')
			end
		end
		if name == "content-length" then
			if len ~= nil or value:match('^%d+$') == nil then
				return nil, "bad Content-Length", true
			end
			len = tonumber(value)
		elseif name == "content-type" then
			ctype = value
		elseif name == "transfer-encoding" then
			chunked = true
		elseif name == "connection" then
			local v = value:lower()
			if v:match('close') then
				keep = false
			elseif v:match('keep%-alive') then
				keep = true
			end
		end
	end
	-- roostd sends Content-Length; a chunked answer is not one of its own
	if chunked then
		return nil, "chunked answer (not roostd's framing)", true
	end
	local body = ""
	if len ~= nil then
		if len > MAX_BODY then
			return nil, "answer of " .. len .. " bytes", true
		end
		if len > 0 then
			body, err = sock_recv(s, len, deadline)
			if body == nil then
				return nil, err, true
			end
		end
	else
		-- the body ends where the server closes
		local parts, n = {}, 0
		keep = false
		while true do
			local data, rerr, partial = sock_recv(s, 4096, deadline)
			if data == nil and rerr ~= "closed" then
				return nil, rerr, true
			end
			-- at the close, lua-socket hands over the last bytes
			-- as its third result
			data = data or partial
			parts[#parts + 1] = data
			n = n + #data
			if n > MAX_BODY then
				return nil, "answer over " .. MAX_BODY .. " bytes", true
			end
			if rerr == "closed" then
				break
			end
		end
		body = table.concat(parts)
	end
	return tonumber(status), body, ctype, keep
end

local function sock_connect(c)
	local s, err
	if c.path ~= nil then
		s, err = socket_unix.stream()
	else
		s, err = socket_lib.tcp()
	end
	if s == nil then
		return nil, "socket: " .. tostring(err)
	end
	s:settimeout(settings.connect_ms / 1000)
	local ok
	if c.path ~= nil then
		ok, err = s:connect(c.path)
	else
		ok, err = s:connect(c.host, c.port)
	end
	if ok == nil then
		s:close()
		return nil, "connect: " .. tostring(err)
	end
	if c.path == nil then
		s:setoption("tcp-nodelay", true)
	end
	return s
end

local function sock_ask(c, path)
	local req = "GET " .. path .. " HTTP/1.1\r\nHost: " .. c.hostport ..
	    "\r\nUser-Agent: roost.lua\r\nAccept: application/json\r\n" ..
	    (token ~= nil and "Authorization: Bearer " .. token .. "\r\n" or "") ..
	    "\r\n"
	local deadline
	for _ = 1, 2 do
		local reused = c.sock ~= nil
		if not reused then
			local s, err = sock_connect(c)
			if s == nil then
				return nil, err
			end
			c.sock = s
		end
		-- the request timeout starts once connected (as Dovecot's
		-- client counts it), and a repeat gets no more time
		deadline = deadline or socket_lib.gettime() + settings.request_ms / 1000
		local s = c.sock
		local status, body, ctype, keep
		s:settimeout(math.max(deadline - socket_lib.gettime(), 0))
		local sent, err = s:send(req)
		local answered = false
		if sent ~= nil then
			status, body, ctype, keep = sock_read(s, deadline)
			if status == nil then
				err, answered = body, ctype
			end
		end
		if status ~= nil then
			if not keep then
				sock_close(c)
			end
			return status, body, ctype
		end
		sock_close(c)
		-- only a reused connection the server had already given up
		if not reused or answered or err == "timeout" then
			return nil, err
		end
	end
	return nil, "connection closed twice"
end

local function ask(c, path)
	if transport == "socket" then
		return sock_ask(c, path)
	end
	return dovecot_ask(c, path)
end

-- Which transport runs: "auto" takes lua-socket when it loads and every URL
-- is plain http (lua-socket has no TLS), else Dovecot's client. "socket"
-- asked for and not possible stops script_init with the reason.
local function choose_transport(s)
	local why
	local unix_url
	for _, u in ipairs(s.urls) do
		if u:match('^unix:') then
			unix_url = u
		end
	end
	if unix_url ~= nil then
		-- only lua-socket reaches a unix socket
		local ok, lib = pcall(require, "socket.core")
		local uok, ulib = pcall(require, "socket.unix")
		if s.transport == "dovecot" or not ok or not uok or
		    type(ulib) ~= "table" or ulib.stream == nil then
			error("roost: " .. unix_url .. " needs transport socket " ..
			    "(lua-socket with socket.unix)")
		end
		for _, u in ipairs(s.urls) do
			if u:match('^https:') then
				error("roost: transport socket (for " .. unix_url ..
				    ") speaks no TLS: " .. u)
			end
		end
		return "socket", lib, nil, ulib
	end
	if s.transport ~= "dovecot" then
		local ok, lib = pcall(require, "socket.core")
		if not ok or type(lib) ~= "table" or lib.tcp == nil then
			why = "lua-socket not loadable (" ..
			    tostring(lib):match('^[^\n]*') .. ")"
		else
			for _, u in ipairs(s.urls) do
				if u:match('^https:') then
					why = "lua-socket speaks no TLS: " .. u
					break
				end
			end
			if why == nil then
				return "socket", lib, nil
			end
		end
		if s.transport == "socket" then
			error("roost: transport = socket: " .. why)
		end
	end
	return "dovecot", nil, why
end

function script_init(args)
	settings = roost.configure(type(args) == "table" and args or nil)
	for _, c in ipairs(controllers) do
		sock_close(c)
	end
	controllers = {}
	token = nil
	for i, u in ipairs(settings.urls) do
		local path = u:match('^unix:(.*)$')
		local hostport = u:match('^https?://(.*)$') or "localhost"
		local host, port = hostport:match('^%[(.*)%]:?(%d*)$')
		if host == nil then
			host, port = hostport:match('^([^:]*):?(%d*)$')
		end
		controllers[i] = { url = u, down_until = 0, hostport = hostport,
		    host = host, port = tonumber(port) or 80, path = path }
	end
	if settings.token_file ~= "" then
		local t, err = read_token(settings.token_file)
		if t == nil then
			error("roost: lookup_token_file: " .. tostring(err))
		end
	end
	load_token()
	local why
	transport, socket_lib, why, socket_unix = choose_transport(settings)
	http_client = nil
	local msg
	if transport == "socket" then
		msg = "roost: lookup transport socket (" ..
		    tostring(socket_lib._VERSION) ..
		    ", a keep-alive connection per auth process" ..
		    (socket_unix ~= nil and ", unix socket" or "") .. ")"
	else
		http_client = new_http_client(settings, is_dovecot24(args))
		msg = "roost: lookup transport dovecot (dovecot.http.client)"
		if why ~= nil then
			msg = msg .. ": " .. why
		end
	end
	(dovecot.i_info or dovecot.i_error)(msg)
	return 0
end

function script_deinit()
	for _, c in ipairs(controllers) do
		sock_close(c)
	end
end

-- Lookup -------------------------------------------------------------------

local function urlencode(s)
	return (s:gsub('[^%w%-%._~]', function(c)
		return string.format('%%%02X', c:byte())
	end))
end

local function request_tag(req)
	if settings.tag ~= "" then
		return settings.tag
	elseif settings.tag_field == "" then
		return nil
	end
	local v
	local pfield = settings.tag_field:match('^passdb:(.+)$')
	if pfield then
		v = req.passdb[pfield]
	else
		v = req[settings.tag_field]
	end
	if type(v) ~= "string" or v == "" then
		return nil
	end
	return v
end

-- Controllers that just gave no roostd answer go to the back of the line for
-- down_retry seconds, so a dead or wrong first URL does not cost every login
-- a timeout.
local function controller_order()
	local now = os.time()
	local all_up = true
	for _, c in ipairs(controllers) do
		all_up = all_up and c.down_until <= now
	end
	if all_up then
		return controllers		-- the usual case: no copies
	end
	local up, down = {}, {}
	for _, c in ipairs(controllers) do
		if c.down_until <= now then
			up[#up + 1] = c
		else
			down[#down + 1] = c
		end
	end
	for _, c in ipairs(down) do
		up[#up + 1] = c
	end
	return up
end

local function valid_port(p)
	if type(p) == "table" and p.number then
		p = p.number
	end
	if type(p) ~= "string" or p:match('^%d+$') == nil then
		return nil
	end
	local n = tonumber(p)
	if n < 1 or n > 65535 then
		return nil
	end
	return string.format("%d", n)
end

-- What roostd itself sends on /v1/lookup: JSON (application/json) with
-- status 200 (a route), 400 (a bad parameter, naming the field), 401/403
-- (the token) or 503 (with one of these reasons).  Every lookup either
-- routes or 503s: roostd has no "unknown user".  Any other answer is not
-- roostd speaking (a wrong URL, a reverse proxy, an older API) and says
-- nothing about the user.
local ROOSTD_503 = { no_backend = true, no_port = true, moving = true,
    store = true }

local function is_json(ctype)
	return type(ctype) == "string" and
	    ctype:lower():match('^%s*application/json%s*[;]?') ~= nil
end

-- One controller's answer: returns
--   "ok", fields           a route
--   "final", result, why   the login's result, no other controller asked
--   "auth", why            token refused (roostd spoke; try the next)
--   "busy", why            roostd cannot route now (try the next)
--   "foreign", why         not a roostd answer (try the next, mark it down)
local function interpret(status, body, ctype)
	local PASSDB = dovecot.auth
	if status == nil then
		return "foreign", "no answer (" .. tostring(body) .. ")"
	end
	if status ~= 200 and status ~= 400 and status ~= 401 and
	    status ~= 403 and status ~= 503 then
		return "foreign", "status " .. status .. " is not a roostd answer"
	end
	if not is_json(ctype) then
		return "foreign", "status " .. status .. " without a JSON body"
	end
	local obj, jerr = roost.json_decode(body)
	if obj == nil then
		return "foreign", "status " .. status .. ", bad JSON: " .. jerr
	end
	if status == 200 then
		local host, backend = obj.host, obj.backend
		local port = valid_port(obj.port)
		if type(host) ~= "string" or host == "" or
		    type(backend) ~= "string" or backend == "" or port == nil then
			return "foreign", "answer lacks host, backend or port"
		end
		local fields = {
			proxy = "y",
			host = host,
			port = port,
			user_roost_backend = backend,
		}
		if type(obj.hostip) == "string" and obj.hostip ~= "" then
			fields.hostip = obj.hostip
		end
		-- "yes" (not "any-cert") makes the proxy verify the backend's
		-- certificate against ssl_client_ca_*. An unknown mode is no
		-- route: a backend that wants TLS never gets a plain connection.
		local tls = obj.tls
		if tls == "yes" then
			fields.ssl = "yes"
		elseif tls == "starttls" then
			fields.starttls = "yes"
		elseif tls ~= nil and tls ~= "no" then
			return "next", "answer has an unknown tls mode"
		end
		if settings.nopassword then
			fields.nopassword = "y"
		end
		return "ok", fields
	end
	if type(obj.error) ~= "string" then
		return "foreign", "status " .. status .. " without roostd's error"
	end
	if status == 400 then
		if type(obj.field) ~= "string" then
			return "foreign", "status 400 without roostd's field"
		end
		-- our request is wrong (a protocol roostd does not route, a user
		-- name it refuses): every controller would say so, and it is a
		-- setup problem to fix, not a verdict on the user
		return "final", PASSDB.PASSDB_RESULT_INTERNAL_FAILURE,
		    "roost: lookup refused: " .. obj.field .. ": " .. obj.error
	elseif status == 401 or status == 403 then
		return "auth", "lookup token refused (status " .. status .. ")"
	end
	if type(obj.reason) ~= "string" or not ROOSTD_503[obj.reason] then
		return "foreign", "status 503 without roostd's reason"
	end
	if obj.reason == "moving" then
		return "final", PASSDB.PASSDB_RESULT_INTERNAL_FAILURE,
		    "user is being moved"
	end
	return "busy", "status 503 " .. obj.reason
end

local function log_error(msg)
	dovecot.i_error(msg)
end

local function log_warning(msg)
	(dovecot.i_warning or dovecot.i_error)(msg)
end

function roost.lookup(req)
	local PASSDB = dovecot.auth
	local dproto = req.protocol or req.service or ""
	local proto = PROTOCOLS[dproto]
	if proto == nil then
		return PASSDB.PASSDB_RESULT_INTERNAL_FAILURE,
		    "roost: protocol '" .. dproto .. "' is not routed"
	end
	local user = req.user
	if user == nil or user == "" then
		return PASSDB.PASSDB_RESULT_USER_UNKNOWN, "roost: no user name"
	end
	local path = "/v1/lookup?user=" .. urlencode(user) .. "&protocol=" .. proto
	local tag = request_tag(req)
	if tag ~= nil then
		path = path .. "&tag=" .. urlencode(tag)
	end

	local errors = {}
	for _, c in ipairs(controller_order()) do
		local verdict, a, b = interpret(ask(c, path))
		if verdict == "auth" and load_token() then
			-- the token file changed under us: one more try
			verdict, a, b = interpret(ask(c, path))
		end
		if verdict == "ok" then
			c.down_until = 0
			return PASSDB.PASSDB_RESULT_OK, a
		elseif verdict == "final" then
			c.down_until = 0
			if b ~= "user is being moved" then
				log_error(b .. " (" .. c.url .. ")")
			end
			return a, b
		elseif verdict == "auth" or verdict == "busy" then
			-- roostd spoke: it is up, just of no use to this login
			c.down_until = 0
			if verdict == "auth" then
				log_error("roost: " .. c.url .. ": " .. a)
			end
		elseif verdict == "foreign" then
			if c.down_until <= os.time() then
				log_warning("roost: " .. c.url .. ": " .. a ..
				    "; asked last for " .. settings.down_retry .. " s")
			end
			c.down_until = os.time() + settings.down_retry
		end
		errors[#errors + 1] = c.url .. ": " .. a
	end
	local reason = "roost: no controller answered: " .. table.concat(errors, "; ")
	return PASSDB.PASSDB_RESULT_INTERNAL_FAILURE, reason
end

function auth_passdb_lookup(req)
	return roost.lookup(req)
end

return roost
