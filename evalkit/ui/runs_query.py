"""The runs table's query, as the URL states it: experiments, filter, sort, chosen columns and
page; turned into one ``search_runs`` page (and a count) so nothing loads every run or column."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from evalkit.entities import Run, ViewType
from evalkit.tracking.store import TrackingStore

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_CHILDREN = 1000  # nested runs fetched for one page of parents
DEFAULT_METRIC_COLUMNS = 5
DEFAULT_PARAM_COLUMNS = 3
ENTITY_PREFIXES = {"params": "param", "metrics": "metric", "tags": "tag"}
ATTRIBUTE_SORTS = ("run_name", "status", "start_time", "end_time", "user_id")
TOP_LEVEL = "attributes.parent_run_id IS NULL"


@dataclass(frozen=True)
class Column:
    """A param, metric or tag shown as a column; ``ref`` is how the URL writes it (``metrics.acc``)."""

    entity: str  # "param", "metric" or "tag"
    name: str

    @property
    def ref(self) -> str:
        return f"{self.entity}s.{self.name}"

    @property
    def sort_key(self) -> str:
        """The key in the filter grammar; backquoted, so any name is one key."""
        return f"{self.entity}s.`{self.name}`"

    def value(self, run: Run) -> str | float | None:
        return getattr(run.data, self.entity + "s").get(self.name)


def parse_column(ref: str) -> Column | None:
    """``metrics.acc`` -> Column("metric", "acc"); None for anything else (ignored, not an error:
    a shared link from an older version still opens)."""
    prefix, _, name = ref.partition(".")
    entity = ENTITY_PREFIXES.get(prefix)
    return Column(entity, name) if entity and name else None


@dataclass
class RunsQuery:
    experiment_ids: list[str]
    filter: str = ""
    order: str = ""  # a key of the filter grammar, or ""
    descending: bool = True
    columns: list[Column] = field(default_factory=list)
    columns_chosen: bool = False  # False: the default columns are picked from the store's keys
    page_token: str | None = None
    previous: list[str] = field(default_factory=list)  # tokens of the pages before this one ("" = first)
    size: int = DEFAULT_PAGE_SIZE
    group: bool = True  # nested runs under their parent

    @classmethod
    def from_params(cls, params: dict[str, list[str]], experiment_ids: list[str]) -> RunsQuery:
        """Read the query from the URL's parameters (``params`` maps a name to all its values)."""
        def one(name: str, default: str = "") -> str:
            return (params.get(name) or [default])[-1]

        size = int(one("size", str(DEFAULT_PAGE_SIZE))) if one("size").isdigit() else DEFAULT_PAGE_SIZE
        columns = [c for c in (parse_column(ref) for ref in params.get("col", [])) if c is not None]
        return cls(
            experiment_ids=experiment_ids,
            filter=one("filter").strip(),
            order=one("order").strip(),
            descending=one("dir", "desc") != "asc",
            columns=list(dict.fromkeys(columns)),
            columns_chosen=one("cols") == "1",
            page_token=one("page") or None,
            previous=one("prev").split(),
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
            group=one("group", "1") == "1",
        )

    def order_by(self) -> list[str]:
        if not self.order:
            return []
        return [f"{self.order} {'DESC' if self.descending else 'ASC'}"]

    def search_filter(self) -> str | None:
        """The filter sent to the store: the user's; grouped without a filter, top-level runs only
        (their nested runs are fetched for the page's parents)."""
        if self.filter:
            return self.filter
        return TOP_LEVEL if self.group else None

    def params(self, **changes: object) -> list[tuple[str, str]]:
        """The URL parameters of this query with ``changes`` (page/prev/order/dir/...) applied."""
        values: dict[str, object] = {
            "filter": self.filter, "order": self.order, "dir": "desc" if self.descending else "asc",
            "size": self.size, "group": "1" if self.group else "0", "page": self.page_token or "",
            "prev": " ".join(self.previous) if self.previous else "",
        }
        values.update(changes)
        pairs = [(k, str(v)) for k, v in values.items() if v not in ("", None)]
        if self.columns_chosen:
            pairs.append(("cols", "1"))
        pairs += [("col", c.ref) for c in self.columns]
        return pairs

    def url(self, path: str, **changes: object) -> str:
        return f"{path}?{urlencode(self.params(**changes))}"

    def sort_url(self, path: str, key: str) -> str:
        """Sort by ``key``: descending first, a second click ascending; back to page one."""
        descending = not (self.order == key and self.descending)
        return self.url(path, order=key, dir="desc" if descending else "asc", page="", prev="")

    def next_url(self, path: str, token: str) -> str:
        return self.url(path, page=token, prev=" ".join([*self.previous, self.page_token or "-"]))

    def previous_url(self, path: str) -> str | None:
        if not self.previous:
            return None
        before = self.previous[-1]
        return self.url(path, page="" if before == "-" else before, prev=" ".join(self.previous[:-1]))

    @property
    def first_row(self) -> int:
        return len(self.previous) * self.size + 1


@dataclass
class RunsPage:
    rows: list[tuple[Run, int]]  # (run, nesting depth) in display order
    total: int
    next_token: str | None
    columns: list[Column]

    @property
    def last_row_offset(self) -> int:
        """How many rows of the paged search are shown (nested runs fetched for them not counted)."""
        return sum(1 for _, depth in self.rows if depth == 0)


def default_columns(store: TrackingStore, experiment_ids: list[str]) -> list[Column]:
    metrics = store.search_keys(experiment_ids, "metric", max_results=DEFAULT_METRIC_COLUMNS)
    params = store.search_keys(experiment_ids, "param", max_results=DEFAULT_PARAM_COLUMNS)
    return [Column("metric", k) for k in metrics] + [Column("param", k) for k in params]


def load_page(store: TrackingStore, query: RunsQuery) -> RunsPage:
    """One page of the table; ``FilterSyntaxError`` for a bad filter or sort key."""
    search_filter = query.search_filter()
    runs, next_token = store.search_runs(query.experiment_ids, search_filter, ViewType.ACTIVE_ONLY, query.size,
                                         query.order_by(), query.page_token)
    total = store.count_runs(query.experiment_ids, search_filter)
    columns = query.columns if query.columns_chosen or query.columns else default_columns(store, query.experiment_ids)
    children: dict[str, list[Run]] = {}
    if query.group and runs:
        on_page = {run.info.run_id for run in runs}
        if not query.filter:
            ids = ", ".join(f"'{run_id}'" for run_id in on_page)  # run ids are hex: nothing to escape
            nested, _ = store.search_runs(query.experiment_ids, f"attributes.parent_run_id IN ({ids})",
                                          ViewType.ACTIVE_ONLY, MAX_CHILDREN, ["attributes.start_time ASC"])
        else:
            nested = [run for run in runs if run.info.parent_run_id in on_page]
        for run in nested:
            children.setdefault(run.info.parent_run_id or "", []).append(run)
        nested_ids = {run.info.run_id for run in nested}
        runs = [run for run in runs if run.info.run_id not in nested_ids]
    rows: list[tuple[Run, int]] = []

    def place(run: Run, depth: int) -> None:
        rows.append((run, depth))
        for child in children.get(run.info.run_id, []):
            place(child, depth + 1)

    for run in runs:
        place(run, 0)
    return RunsPage(rows, total, next_token, columns)
