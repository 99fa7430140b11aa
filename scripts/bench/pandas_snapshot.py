"""The baseline of `clv snapshot`: the same snapshot in pandas, vectorised (read_csv / read_parquet,
then groupby). Used by scripts/bench-scale.sh side by side with clv on the same input; not part of the
product. Usage: python pandas_snapshot.py <input.csv|.parquet> <cutoff YYYY-MM-DD> <out.parquet>

It does the work `clv snapshot` does: the sheet-overlap rule (a CSV of both sheets), the line classes,
purchases (distinct customer and invoice among purchase lines, earliest time, exact revenue), the nine
features at the cutoff and the 6-month label.
"""
import sys

import numpy as np
import pandas as pd

path, cutoff, out = sys.argv[1], pd.Timestamp(sys.argv[2]), sys.argv[3]
if path.endswith(".parquet"):
    df = pd.read_parquet(path, columns=["invoice", "quantity", "invoice_date", "price", "customer_id"])
    df = df.rename(columns={"invoice_date": "time"})
else:
    df = pd.read_csv(path, dtype={"Invoice": str, "StockCode": str}, usecols=[0, 3, 4, 5, 6])
    df.columns = ["invoice", "quantity", "time", "price", "customer_id"]
    df["time"] = pd.to_datetime(df["time"], format="%Y-%m-%d %H:%M:%S")
    # The overlap rule: dates decrease at exactly one row -> the second sheet starts there.
    down = np.flatnonzero(df["time"].values[1:] < df["time"].values[:-1]) + 1
    if len(down) == 1:
        start = down[0]
        first = df["time"].iat[start]
        keep = np.ones(len(df), dtype=bool)
        keep[:start] = df["time"].values[:start] < first.to_datetime64()
        df = df[keep]
df = df[df["customer_id"].notna()]
price_milli = np.round(df["price"].to_numpy() * 1000).astype(np.int64)
invoice = df["invoice"].astype(str)
purchase = (
    ~invoice.str.startswith("C")
    & invoice.str.fullmatch(r"\d+")
    & (df["quantity"].to_numpy() > 0)
    & (price_milli > 0)
)
lines = pd.DataFrame(
    {
        "customer_id": df["customer_id"].astype(np.int64).to_numpy(),
        "invoice": invoice.to_numpy(),
        "time": df["time"].to_numpy(),
        "value": df["quantity"].to_numpy().astype(np.int64) * price_milli,
    }
)[purchase.to_numpy()]
purchases = lines.groupby(["customer_id", "invoice"], sort=False).agg(
    time=("time", "min"), revenue=("value", "sum")
).reset_index()
before = purchases[purchases["time"] < cutoff].sort_values(["customer_id", "time"])
end = cutoff + pd.DateOffset(months=6)
label = (
    purchases[(purchases["time"] >= cutoff) & (purchases["time"] < end)]
    .groupby("customer_id")["revenue"].sum() / 1000.0
)
g = before.groupby("customer_id")
day = pd.Timedelta(days=1)
gaps = before["time"].diff() / day
gaps[before["customer_id"].ne(before["customer_id"].shift())] = np.nan
before = before.assign(gap=gaps, month=before["time"].dt.to_period("M"))
g = before.groupby("customer_id")
features = pd.DataFrame(
    {
        "recency_days": ((cutoff - g["time"].max()) // day),
        "tenure_days": ((cutoff - g["time"].min()) // day),
        "frequency": g.size(),
        "total_revenue": g["revenue"].sum() / 1000.0,
        "active_months": g["month"].nunique(),
        "avg_gap_days": g["gap"].mean(),
        "std_gap_days": g["gap"].std(),
    }
)
features.loc[features["frequency"] == 2, "std_gap_days"] = 0.0  # one gap: 0 by the contract
features["avg_order_value"] = features["total_revenue"] / features["frequency"]
features["purchase_velocity"] = features["frequency"] / features["active_months"]
features["clv_6m"] = label.reindex(features.index).fillna(0.0)
features.reset_index().to_parquet(out)
print(f"{len(features)} customers")
