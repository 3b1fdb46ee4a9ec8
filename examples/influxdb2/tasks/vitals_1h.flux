// Hourly rollup of vitals into pulsegate_rollup, as cq_vitals_1h does on 1.x (cloud/retention.py):
// count = sum of counts, min of mins, max of maxes, mean of means, invalid = sum; grouped by every tag.
option task = {name: "pulsegate_vitals_1h", every: 1h, offset: 5m}

data = from(bucket: "pulsegate")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "vitals")

roll = (field, fn) => data
    |> filter(fn: (r) => r._field == field)
    |> aggregateWindow(every: 1h, fn: fn, createEmpty: false, timeSrc: "_start")

union(tables: [
    roll(field: "count", fn: sum),
    roll(field: "min", fn: min),
    roll(field: "max", fn: max),
    roll(field: "mean", fn: mean),
    roll(field: "invalid", fn: sum),
])
    |> set(key: "_measurement", value: "vitals_1h")
    |> to(bucket: "pulsegate_rollup")
