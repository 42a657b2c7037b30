"""Reports: logged runs -> tidy frames -> paper-style ablation tables, figures and an index.

The pipeline, each step a plain function (no torch anywhere on this path)::

    offline.read_offline(DIR) / wandb_api.read_wandb("ENTITY/PROJECT") -> schema.Collection(runs, history)
    sweeps.planned(records.find_sweep_files(DIR))                     -> planned runs (their plan.json)
    tables.build_table(runs, "2a", expected=planned, strict=False)    -> one table frame
    epochs.curves(history, tables.assign_rows(runs, "2a"))            -> mean ± std per row and epoch
    render.to_markdown / to_latex / to_csv (table)                    -> text
    plots.plot_accuracy_vs_flops / plot_bars / plot_curves            -> matplotlib Figures
    cli.main(["--runs", DIR, "--out", "results"])                     -> all of it, written to disk

``records`` is nlstudy.records (the sweep's files as the sweep writes them). A table is built (``tables``)
from four smaller pieces: ``specs`` (the registry: what each table compares), ``stats`` (Welch's t-test, t
intervals), ``paper`` (the paper's numbers) and ``text`` (canonical values, cells, row labels, titles and
footnotes); its runs over epochs are ``epochs``.
"""

from nlstudy.report.wandb_api import read_wandb
from nlstudy.report.offline import read_offline
from nlstudy.report.schema import Collection
from nlstudy.report.specs import TABLES, table_spec
from nlstudy.report.stats import ALPHA
from nlstudy.report.epochs import curves
from nlstudy.report.tables import assign_rows, build_table, table_rows

__all__ = [
    "ALPHA", "Collection", "TABLES", "assign_rows", "build_table", "curves", "read_offline", "read_wandb",
    "table_rows", "table_spec",
]
