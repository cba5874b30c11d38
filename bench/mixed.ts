import { createDevice } from './api.js';
import { luaString, writeLua } from './wrk.js';

/**
 * The mixed scenario of the seed's Locust file (issue 17): each user has a device of its own and
 * sends, in ten requests, eight single readings of that device, one request for the statistics of
 * that device and one for the device list; wrk with 10 connections plays 10 users with no think time
 * (Locust's "fast client"). wrk keeps one Lua state per thread, not per connection, so each thread
 * cycles through the devices from an offset of its own: the mix is exact over every ten requests.
 */
export const MIXED_USERS = 10;

/** Makes the users' devices through the API and writes the wrk script; answers its path. */
export async function writeMixedScript(base: string, dir: string): Promise<string> {
  const devices: number[] = [];
  for (let i = 0; i < MIXED_USERS; i++) devices.push(await createDevice(base));
  const lua = `
local devices = { ${devices.join(', ')} }
local post_headers = { ["Content-Type"] = "application/json" }
local threads = 0
setup = function(thread)
  thread:set("first", threads * 50)
  threads = threads + 1
end
local n = nil
request = function()
  n = n or first or 0
  local step = n % 10
  local device = devices[(math.floor(n / 10) % #devices) + 1]
  n = n + 1
  if step < 8 then
    local body = string.format(${luaString('{"device_id":%d,"x":%.3f,"y":%.3f,"z":1.5}')}, device, step * 0.5, n % 97)
    return wrk.format("POST", "/data/", post_headers, body)
  elseif step == 8 then
    return wrk.format("GET", "/analyze_statistics/?device_id=" .. device)
  end
  return wrk.format("GET", "/device/")
end
`;
  return writeLua(dir, 'mixed', lua);
}
