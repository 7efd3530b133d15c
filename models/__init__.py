"""Forecasting models for the predictive autoscaler.

Pure computation: numpy, pandas, scikit-learn and statsmodels, nothing of ours but
``models`` itself. Importing this package has no side effects. The public surface is
the ``Forecaster`` protocol, the ``Forecast`` record, the registry table in
``models.registry`` and the rolling-origin backtest in ``models.backtest``.
"""
