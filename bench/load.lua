-- wrk mixed load: 4 reads for every batch write of 50 events (ids unique per request).
local counter = 0
local key = os.getenv("TK_KEY")
local reads = {"/v1/events?limit=100", "/v1/events?actor_id=user-3&limit=100",
               "/v1/events?action=created&source=api&limit=100", "/audit-events"}

request = function()
  counter = counter + 1
  local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  if counter % 5 == 0 then
    local parts = {}
    for i = 1, 50 do
      parts[i] = string.format(
        '{"id":"load-%d-%d-%d","action":"updated","actor":{"id":"user-%d"},"source":"api"}',
        math.random(1, 1000000000), counter, i, i % 20)
    end
    return wrk.format("POST", "/v1/events/batch", headers,
                      '{"events":[' .. table.concat(parts, ",") .. ']}')
  end
  return wrk.format("GET", reads[(counter % #reads) + 1], headers)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx or socket errors: %d\n",
           summary.errors.status + summary.errors.connect + summary.errors.read +
           summary.errors.write + summary.errors.timeout))
end
