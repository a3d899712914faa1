-- The fast mock OpenAI API: nginx + the Lua module (ngx_lua), one instance per nginx worker.
--
-- Responses are assembled once, at start, from mock_llm/contract.json (the same pieces WireMock's
-- mappings are rendered from), so every answer is a string already in memory: per request the mock
-- only reads and parses the JSON body, checks `messages`, waits as the pacing profile says and
-- writes. The profile is fixed at start (gateways strip unknown headers, so nothing is signalled
-- per request).

local cjson = require "cjson.safe"
local counts = ngx.shared.aigw_counts  -- probe requests per model (lua_shared_dict in nginx.conf.j2)

local M = {}

local S                  -- settings: profile, contract path (decoded from the rendered config)
local completion         -- the non-streaming body
local completion_tokens  -- tokens in one answer (streaming: content chunks)
local role_event         -- first SSE event (role), sent together with the first token
local token_events = {}  -- one SSE event per content token
local final_event        -- finish_reason + usage
local done_event         -- data: [DONE]
local errors = {}        -- name -> {status, body}

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot read " .. path .. ": " .. tostring(err)) end
  local text = f:read("*a")
  f:close()
  return text
end

-- Plain substitution ($NAME -> value); gsub patterns would treat '%' in values specially.
local function subst(text, name, value)
  local from, to = text:find("$" .. name, 1, true)
  while from do
    text = text:sub(1, from - 1) .. value .. text:sub(to + 1)
    from, to = text:find("$" .. name, from + #value, true)
  end
  return text
end

local function with_usage(text, prompt_tokens, n)
  text = subst(text, "PROMPT_TOKENS", tostring(prompt_tokens))
  text = subst(text, "COMPLETION_TOKENS", tostring(n))
  return subst(text, "TOTAL_TOKENS", tostring(prompt_tokens + n))
end

-- Called once per nginx master (init_by_lua): everything below is shared, read-only, by workers.
function M.init(settings_json)
  S = assert(cjson.decode(settings_json), "mock settings are not valid JSON")
  local c = assert(cjson.decode(read_file(S.contract)), "the contract is not valid JSON")
  local tokens = c.stream.tokens
  local n = S.profile.output_tokens
  local content
  if n == nil or n == cjson.null then
    -- The contract's own answer: non-streaming and streaming texts as WireMock serves them.
    n = #tokens
    content = c.content
    completion = with_usage(subst(c.completion, "CONTENT", '"' .. content .. '"'), c.prompt_tokens,
                            c.content_tokens)
  else
    local parts = {}
    for i = 1, n do parts[i] = tokens[(i - 1) % #tokens + 1] end
    content = table.concat(parts)
    completion = with_usage(subst(c.completion, "CONTENT", '"' .. content .. '"'), c.prompt_tokens, n)
  end
  completion_tokens = n
  for i = 1, n do
    token_events[i] = subst(c.stream.token, "TOKEN", '"' .. tokens[(i - 1) % #tokens + 1] .. '"')
  end
  role_event = c.stream.role
  final_event = with_usage(c.stream.final, c.prompt_tokens, n)
  done_event = c.stream.done
  for name, e in pairs(c.errors) do errors[name] = e end
end

-- The same, with the settings in a file (on EKS: settings.json of the mock's ConfigMap).
function M.init_file(path)
  M.init(read_file(path))
end

function M.init_worker()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
end

-- A delay in seconds drawn as the profile says: fixed, or log-normal around it (median = nominal).
local function draw(ms)
  if ms <= 0 then return 0 end
  local sigma = S.profile.jitter_sigma or 0
  if sigma > 0 then
    local u1, u2 = math.random(), math.random()
    local z = math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)
    ms = ms * math.exp(sigma * z)
  end
  return ms / 1000
end

local function pause(ms)
  local s = draw(ms)
  if s > 0 then ngx.sleep(s) end
end

local function answer_error(name)
  local e = errors[name]
  ngx.status = e.status
  ngx.header["Content-Type"] = "application/json"
  if e.status == 429 then ngx.header["Retry-After"] = "1" end
  ngx.print(e.body)
  return ngx.exit(e.status)
end

local function request_body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data == nil then
    -- Bigger than client_body_buffer_size: nginx kept it in a temporary file.
    local path = ngx.req.get_body_file()
    if path then data = read_file(path) end
  end
  return data
end

local function chance(p)
  return p and p > 0 and math.random() < p
end

local function stream(faults)
  local p = S.profile
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  local cut = chance(faults.disconnect) and math.floor(completion_tokens / 2) or nil
  pause(p.ttft_ms)
  -- Headers, the role event and the first token leave together at the time to first token.
  ngx.print(role_event, token_events[1])
  ngx.flush(true)
  for i = 2, completion_tokens do
    if cut and i > cut then
      -- A connection closed mid-stream: no final chunk, no [DONE].
      return ngx.exit(ngx.ERROR)
    end
    pause(p.per_token_ms)
    ngx.print(token_events[i])
    ngx.flush(true)
  end
  ngx.print(final_event, done_event)
  return ngx.exit(ngx.HTTP_OK)
end

function M.chat()
  local data = request_body()
  local req = data and cjson.decode(data)
  if type(req) ~= "table" then return answer_error("invalid_json") end
  local messages = req.messages
  if type(messages) ~= "table" or messages[1] == nil then return answer_error("missing_messages") end
  -- Requests a correctness probe names (model aigw-probe-*) are counted: did a cache keep one from us?
  local model = req.model
  if type(model) == "string" and model:sub(1, 11) == "aigw-probe-" then counts:incr(model, 1, 0) end

  local faults = S.profile.faults or {}
  if chance(faults.http_429) then return answer_error("rate_limited") end
  if chance(faults.http_500) then return answer_error("server_error") end
  if req.stream == true then return stream(faults) end
  if chance(faults.disconnect) then return ngx.exit(444) end  -- closed without an answer

  local p = S.profile
  if p.ttft_ms > 0 or p.per_token_ms > 0 then
    -- Non-streaming: the whole answer after the time the model would take to write it.
    local s = draw(p.ttft_ms) + completion_tokens * draw(p.per_token_ms)
    if s > 0 then ngx.sleep(s) end
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(completion)
end

-- GET /__aigw/count?model=NAME: how many requests naming that probe model reached the mock.
function M.count()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({ model = ngx.var.arg_model, count = counts:get(ngx.var.arg_model or "") or 0 }))
end

function M.not_found()
  return answer_error("not_found")
end

return M
