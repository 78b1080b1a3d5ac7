"""Failure prediction: trends toward a limit, fan wear, and how well they do. Pure NumPy.

trend.py     robust linear (or exponential) trends of many series at once; time to a threshold
             with a Fieller interval, autocorrelation-aware
tracker.py   TrendTracker: 1-minute means in a ring, refitted as buckets close (hot stream);
             forecast_from_history: the same over arrays from the store
fan.py       FanWearTracker / predict_fan_wear: speed ratio against the learned rpm at the
             commanded level, time until the fan reaches its failure ratio
evaluate.py  the fan predictor run against the twin's wear scenario: lead times, errors,
             interval coverage, false predictions on healthy fans

See docs/PREDICTION.md for the method, defaults and measured accuracy.
"""

from rackwatch.engine.predict.fan import (
    DEFAULT_FAN_WEAR,
    FanForecast,
    FanWearParams,
    FanWearTracker,
    predict_fan_wear,
)
from rackwatch.engine.predict.tracker import Forecast, TrendTracker, forecast_from_history
from rackwatch.engine.predict.trend import (
    DEFAULT_TREND,
    Eta,
    Trend,
    TrendParams,
    crossing,
    fit_trends,
)

__all__ = [
    "DEFAULT_FAN_WEAR",
    "DEFAULT_TREND",
    "Eta",
    "FanForecast",
    "FanWearParams",
    "FanWearTracker",
    "Forecast",
    "Trend",
    "TrendParams",
    "TrendTracker",
    "crossing",
    "fit_trends",
    "forecast_from_history",
    "predict_fan_wear",
]
