-- wrk script for bench/load.py: realistic customer turns, or GET /healthz, at full speed
-- or at a fixed total rate.
--
--   wrk -t T -c C -d D -s bench/load.lua URL -- MODE RATE ACTIVE PREFIX SEED
--
-- RATE and ACTIVE are per wrk thread (bench/load.py divides the totals).
-- MODE    turns (POST /v1/conversations/{id}/turns) or healthz (GET /healthz)
-- RATE    requests per second (0: as fast as the server answers). Debian's wrk has no
--         wrk2-style -R, so delay() hands out send times from the thread's schedule,
--         one every 1/RATE s; a connection waits for its slot.
--         Latency is counted from the actual send, so keep enough connections that one
--         is always free (a late response then delays no other request).
-- ACTIVE  conversations in progress at any time; a turn goes to one of
--         them at random, and a conversation that reaches its planned length (2-40
--         turns) is replaced by a new one, so ids keep coming and state sizes are mixed.
-- PREFIX  conversation ids start with it (bench/load.py deletes the keys afterwards).
-- SEED    random seed (each thread adds its number).
--
-- done() prints one line `LOADJSON {...}` for bench/load.py.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clk_id, load_timespec *tp);
]]
local timespec = ffi.new("load_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

-- Main state: one entry per thread, to read their counters in done().
local threads = {}

function setup(thread)
  thread:set("thread_number", #threads + 1)
  threads[#threads + 1] = thread
end

-- Thread state ------------------------------------------------------------------------

local mode, interval_ms, next_slot, prefix
local active = {}
local healthz_request
-- Globals, so done() can read them with thread:get().
started = 0  -- conversations started by this thread
non_200 = 0  -- answered, but not 200

-- Customer-service phrases; a message is a few of them cut to 5-40 words.
local NEUTRAL = {
  "hi there I ordered a pair of running shoes last week",
  "my order number is 48213 and it was supposed to arrive on monday",
  "can you tell me where my parcel is right now",
  "I would like to change the delivery address to my office",
  "the tracking page has not changed since friday",
  "I paid with my credit card and the money already left my account",
  "how do I return an item that does not fit",
  "is it possible to get the invoice sent to my email",
  "I moved house last month so the address on file is old",
  "the app keeps logging me out when I try to pay",
  "my subscription renewed but I wanted the cheaper plan",
  "what are your opening hours on the weekend",
  "ok please send the replacement to the same address as before",
  "will I get an email with the new tracking number",
  "the size was fine but the colour is not what the picture showed",
  "I tried resetting my password twice already",
  "the discount code from your newsletter does not work at checkout",
  "I need to update the phone number on my account",
}
local QUESTIONS = {
  "when will it arrive?",
  "can you check that for me?",
  "how long does a refund usually take?",
  "why was I charged twice?",
  "do you deliver on saturdays?",
  "what happens if nobody is home?",
  "is there a fee for changing the plan?",
}
local FRUSTRATED = {
  "I already told you the parcel never came",
  "this is the third time I explain the same thing!!",
  "I have been waiting for two weeks and nobody answers",
  "this is ridiculous, you promised it would be here yesterday",
  "why do I have to repeat myself every single time",
  "I am really annoyed, nothing you suggest is working",
  "if this is not fixed today I will cancel my account",
  "still nothing, absolutely NOTHING has changed",
  "your service has been terrible from start to finish",
}
local PERSON = {
  "can I please talk to a human",
  "I want to speak to a real person",
  "let me talk to an agent please",
  "connect me with someone from customer service",
}
local SENSITIVE = {
  "someone used my card without my permission and I think it is fraud",
  "I want to cancel my contract and close the account",
  "my husband passed away and the account is in his name",
  "I will be contacting my lawyer about this charge",
}
local THANKS = {
  "great thanks for your help",
  "perfect that answers my question",
  "thank you, have a nice day",
}

local INTENTS = {
  {"order_status", {"ask_order_number", "show_tracking", "confirm_address"}},
  {"refund_request", {"ask_order_number", "explain_refund_policy", "ask_reason"}},
  {"change_address", {"ask_new_address", "confirm_address"}},
  {"billing_question", {"ask_invoice_number", "explain_charges"}},
  {"account_access", {"ask_email", "send_reset_link", "ask_email_retry"}},
  {"subscription_change", {"show_plans", "confirm_plan_change"}},
  {"returns", {"explain_returns", "send_return_label"}},
  {"opening_hours", {"show_opening_hours"}},
}
local ANSWER_INTENTS = {"inform", "confirm", "deny", "nlu_fallback"}
local CHANNELS = {"web", "web", "web", "web", "app", "app", "app", "whatsapp", "whatsapp",
                  "voice", "sms"}
local TIERS = {false, false, false, false, "standard", "standard", "silver", "gold",
               "platinum"}
local SEGMENTS = {"consumer", "consumer", "consumer", "business"}

local random = math.random

local function pick(list)
  return list[random(#list)]
end

local function words_of(phrase, into)
  for word in phrase:gmatch("%S+") do
    into[#into + 1] = word
  end
end

-- A customer message of 5-40 words (shorter ones more common), its mood following the
-- conversation's.
local function compose(conversation)
  local target = 5 + math.floor(35 * random() ^ 1.6)
  local words = {}
  local roll = random()
  if roll < 0.025 then
    words_of(pick(PERSON), words)
  elseif roll < 0.045 then
    words_of(pick(SENSITIVE), words)
  elseif conversation.turn == conversation.length and roll < 0.3 then
    words_of(pick(THANKS), words)
  end
  while #words < target do
    local r = random()
    if r < conversation.mood then
      words_of(pick(FRUSTRATED), words)
    elseif r < conversation.mood + 0.25 then
      words_of(pick(QUESTIONS), words)
    else
      words_of(pick(NEUTRAL), words)
    end
  end
  for i = #words, target + 1, -1 do
    words[i] = nil
  end
  return table.concat(words, " ")
end

local function new_conversation()
  started = started + 1
  local intent = pick(INTENTS)
  local tier = pick(TIERS)
  return {
    id = string.format("%s-%d-%d", prefix, thread_number, started),
    turn = 0,
    -- Planned length, 2-40 turns: most conversations are short, a third reach 20.
    length = 2 + math.floor(38 * random() ^ 2),
    mood = 0.1 + 0.5 * random() ^ 2,  -- how often the customer sounds frustrated
    intent = intent,
    prompt = pick(intent[2]),
    channel = pick(CHANNELS),
    tier = tier,
    segment = pick(SEGMENTS),
    language_sent = random() < 0.5,
    last_text = nil,
  }
end

local function turn_body(conversation)
  local c = conversation
  c.turn = c.turn + 1
  local text
  if c.last_text and random() < 0.1 then
    text = c.last_text  -- the customer repeats themself
  else
    text = compose(c)
  end
  c.last_text = text
  local intent = c.intent[1]
  if c.turn > 1 and random() < 0.3 then
    intent = pick(ANSWER_INTENTS)
  end
  local confidence = 0.3 + 0.69 * random()
  local fallback = c.turn > 1 and (random() < 0.08 or confidence < 0.4)
  if fallback and random() < 0.5 then
    c.prompt = c.prompt .. "_retry"
  elseif random() < 0.4 then
    c.prompt = pick(c.intent[2])
  end
  local parts = {
    '{"turn_id":"', string.format("t%02d-%08x", c.turn, random(0, 0x7fffffff)),
    '","message":{',
  }
  if c.channel == "voice" and random() < 0.3 then
    parts[#parts + 1] = '"intent":"' .. intent .. '"'  -- voice bots may send only NLU
  else
    parts[#parts + 1] = '"text":"' .. text .. '","intent":"' .. intent .. '"'
  end
  parts[#parts + 1] = string.format(',"intent_confidence":%.2f', confidence)
  if c.language_sent then
    parts[#parts + 1] = ',"language":"en"'
  end
  parts[#parts + 1] = string.format('},"bot":{"prompt_id":"%s","fallback":%s}',
                                    c.prompt, fallback and "true" or "false")
  if c.tier then
    parts[#parts + 1] = string.format(',"customer":{"tier":"%s","segment":"%s"}',
                                      c.tier, c.segment)
  end
  parts[#parts + 1] = string.format(
    ',"channel":"%s","context":{"agents_available":%d,"business_hours":%s}}',
    c.channel, random(0, 6), random() < 0.8 and "true" or "false")
  return table.concat(parts)
end

function init(args)
  mode = args[1] or "turns"
  local rate = tonumber(args[2] or "0")
  local active_count = tonumber(args[3] or "1000")
  prefix = args[4] or "load"
  math.randomseed(tonumber(args[5] or "1") + thread_number * 7919)
  interval_ms = rate > 0 and 1000 / rate or 0
  next_slot = now_ms()
  for i = 1, math.max(1, active_count) do
    active[i] = new_conversation()
  end
  wrk.headers["Content-Type"] = "application/json"
  healthz_request = wrk.format("GET", "/healthz")
end

function request()
  if mode == "healthz" then
    return healthz_request
  end
  local slot = random(#active)
  local conversation = active[slot]
  local body = turn_body(conversation)
  if conversation.turn >= conversation.length then
    active[slot] = new_conversation()
  end
  return wrk.format("POST", "/v1/conversations/" .. conversation.id .. "/turns", nil, body)
end

function delay()
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  -- After a stall, catch up at most one second of missed sends, not all of them at once.
  if next_slot < now - 1000 then
    next_slot = now - 1000
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  return wait > 0 and wait or 0
end

function response(status, headers, body)
  if status ~= 200 then
    non_200 = non_200 + 1
  end
end

-- Main state --------------------------------------------------------------------------

function done(summary, latency, requests)
  local started_total, non_200_total = 0, 0
  for _, thread in ipairs(threads) do
    started_total = started_total + (thread:get("started") or 0)
    non_200_total = non_200_total + (thread:get("non_200") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'LOADJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"non_200":%d,' ..
    '"conversations_started":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, non_200_total, started_total,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
