// Hourly rollup of scores into pulsegate_rollup, as cq_scores_1h does on 1.x (cloud/retention.py):
// news2_max, anomaly_max, anomaly_mean; grouped by every tag.
option task = {name: "pulsegate_scores_1h", every: 1h, offset: 5m}

data = from(bucket: "pulsegate")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "scores")

roll = (field, fn, name) => data
    |> filter(fn: (r) => r._field == field)
    |> aggregateWindow(every: 1h, fn: fn, createEmpty: false, timeSrc: "_start")
    |> set(key: "_field", value: name)

union(tables: [
    roll(field: "news2", fn: max, name: "news2_max"),
    roll(field: "anomaly", fn: max, name: "anomaly_max"),
    roll(field: "anomaly", fn: mean, name: "anomaly_mean"),
])
    |> set(key: "_measurement", value: "scores_1h")
    |> to(bucket: "pulsegate_rollup")
