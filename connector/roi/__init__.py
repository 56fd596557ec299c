"""ROI: the engine (costs per campaign, attribution of pipeline and revenue, the figures of
DESIGN section 5), ad spend's mapping to campaigns, the costs themselves and the report's
formats. The engine's public names are this package's face."""

from connector.roi.engine import Figures, Report, RoiEngine, Row, Settings, fx_rates_for

__all__ = ["Figures", "Report", "RoiEngine", "Row", "Settings", "fx_rates_for"]
