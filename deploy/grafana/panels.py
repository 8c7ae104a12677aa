"""The panel kit of the dashboard: PromQL selectors, queries and the three panel styles.

Every panel reads the ``datasource`` variable and filters by the dashboard's variables, so
the helpers here build the selectors; rows (``rows.py``) only say what each panel shows.
The styles are the dashboard's house look: thin unstacked lines with a legend below and a
sorted tooltip, stats that show the last value, and one table.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import FieldColor, ThresholdsConfig
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as viz
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# Each worker series carries job, worker and gpu; results and tokens also carry the model.
_WORKER = 'job=~"$job",worker=~"$worker",gpu=~"$gpu"'
_MODEL = 'model=~"$model"'
# vLLM's own series: its served model name, and the gpu label given to its scrape target.
_VLLM = 'model_name=~"$model",gpu=~"$gpu"'
_QUANTILES = (0.5, 0.95, 0.99)

Target = prometheus.Dataquery
Query = Builder[variants.Dataquery]
Panel = Builder[model.Panel]

# Legends of series split by a label.
PER_INSTANCE = "{{instance}}"
PER_WORKER = "{{worker}}"


def series(metric: str, *, model: bool = False, match: str = "") -> str:
    """``metric`` filtered by the worker variables (and the model, and ``match``)."""
    labels = [_WORKER, *([_MODEL] if model else []), *([match] if match else [])]
    return f"{metric}{{{','.join(labels)}}}"


def vllm(metric: str) -> str:
    """A vLLM metric filtered by the model and GPU variables."""
    return f"{metric}{{{_VLLM}}}"


def rate(selector: str, *, by: str = "", window: str = RATE, fn: str = "rate") -> str:
    """``sum [by (labels)] (fn(selector[window]))``, ``fn`` a range function (rate)."""
    return total(f"{fn}({selector}[{window}])", by=by)


def total(expr: str, *, by: str = "", agg: str = "sum") -> str:
    """``agg [by (labels)] (expr)``: the worker series summed (or ``agg``-ed)."""
    return f"{agg} by ({by}) ({expr})" if by else f"{agg}({expr})"


def quantile(q: float, metric: str, *, by: str = "le") -> str:
    """The ``q`` quantile of a worker histogram, ``metric`` without ``_bucket``."""
    return f"histogram_quantile({q}, {rate(series(metric + '_bucket'), by=by)})"


def query(expr: str, legend: str | None = None, ref: str = "A") -> Target:
    """A range query of the panel's data source."""
    target = Target().datasource(DATASOURCE).ref_id(ref).expr(expr).range()
    return target.legend_format(legend) if legend is not None else target


def queries(*exprs: tuple[str, str]) -> list[Query]:
    """``(expr, legend)`` pairs as queries A, B, C..."""
    return [query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(exprs)]


def quantiles(metric: str) -> list[Query]:
    """p50, p95 and p99 of a worker histogram."""
    return queries(*((quantile(q, metric), f"p{round(q * 100)}") for q in _QUANTILES))


def graph(
    title: str,
    description: str,
    targets: list[Query],
    *,
    unit: str = "short",
    width: int = 8,
    stacked: bool = False,
    bounds: tuple[float | None, float | None] = (None, None),
) -> timeseries.Panel:
    """A time series panel in the house style; ``bounds`` fixes the axis (min, max)."""
    mode = viz.StackingMode.NORMAL if stacked else viz.StackingMode.NONE
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        .unit(unit)
        .draw_style(viz.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(viz.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(common.StackingConfig().mode(mode).group("A"))
        .color_scheme(FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
        .legend(
            common.VizLegendOptions()
            .display_mode(viz.LegendDisplayMode.LIST)
            .placement(viz.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(viz.TooltipDisplayMode.MULTI)
            .sort(viz.SortOrder.DESCENDING)
        )
        .targets(targets)
    )
    low, high = bounds
    if low is not None:
        panel.min(low)
    if high is not None:
        panel.max(high)
    return panel


def steps(*colours: tuple[str, float | None]) -> ThresholdsConfig:
    """Absolute thresholds: ``(colour, from value)``, the first from ``None`` (-inf)."""
    levels = [model.Threshold(value=value, color=colour) for colour, value in colours]
    return ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(levels)


def big_number(
    title: str,
    description: str,
    target: Query,
    *,
    unit: str = "short",
    decimals: int | None = None,
    thresholds: ThresholdsConfig | None = None,
    states: dict[str, tuple[str, str]] | None = None,
) -> stat.Panel:
    """A stat panel (last value); ``states`` maps values to ``(text, colour)`` badges."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(5)
        .span(4)
        .unit(unit)
        .color_scheme(FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds or steps(("green", None)))
        .mappings([_badges(states)] if states else [])
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(viz.BigValueColorMode.BACKGROUND if states else viz.BigValueColorMode.VALUE)
        .graph_mode(viz.BigValueGraphMode.AREA)
        .justify_mode(viz.BigValueJustifyMode.AUTO)
        .orientation(viz.VizOrientation.AUTO)
        .text_mode(viz.BigValueTextMode.AUTO)
        .with_target(target)
    )
    return panel.decimals(decimals) if decimals is not None else panel


def _badges(states: dict[str, tuple[str, str]]) -> model.ValueMap:
    options = {
        value: model.ValueMappingResult(text=text, color=colour, index=index)
        for index, (value, (text, colour)) in enumerate(states.items())
    }
    return model.ValueMap(options=options)


def listing(
    title: str, description: str, expr: str, columns: list[str], *, height: int = 6
) -> table.Panel:
    """A full-width table of an instant query's labels, in the order of ``columns``."""
    organize = {
        "excludeByName": {"Time": True, "Value": True, "__name__": True},
        "indexByName": {column: i for i, column in enumerate(columns)},
    }
    target = (
        Target()
        .datasource(DATASOURCE)
        .ref_id("A")
        .expr(expr)
        .format(PromQueryFormat.TABLE)
        .instant()
    )
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(height)
        .span(24)
        .show_header(True)
        .cell_height(viz.TableCellHeight.SM)
        .with_transformation(model.DataTransformerConfig(id_val="organize", options=organize))
        .with_target(target)
    )
