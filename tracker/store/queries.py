"""The store's reads for the commands and for re-tagging (item counts, stored items in
batches, an item's detail and page), and the rule states that re-tagging keeps (``QueryStore``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from tracker.store.base import StoreBase, utcnow
from tracker.store.models import Feed, Item, ItemSource, RuleMatch, RuleState


class QueryStore(StoreBase):
    """Rule states, counts and reads of stored items."""

    # -- re-tagging ------------------------------------------------------------------------

    def rule_states(self) -> dict[str, str]:
        """Rule id → the rule hash every stored item has been tagged with."""
        with self.engine.connect() as conn:
            return {r: h for r, h in conn.execute(select(RuleState.rule_id, RuleState.rule_hash))}

    def set_rule_state(self, rule_id: str, rule_hash: str) -> None:
        stmt = self._insert(RuleState.__table__).values(rule_id=rule_id, rule_hash=rule_hash, updated_at=utcnow())
        with self._begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["rule_id"], set_={"rule_hash": rule_hash, "updated_at": utcnow()}
                )
            )

    def adopt_rules(self, rules: Iterable[tuple[str, str]]) -> None:
        """Record (rule id, hash) as applied for rules with no state yet, while no item is stored:
        an empty store has nothing to re-tag. (A rule added to a populated store stays unrecorded,
        so that ``tracker rematch`` applies it to the stored items.)"""
        states = self.rule_states()
        missing = [(r, h) for r, h in rules if r not in states]
        if missing and self.count_items() == 0:
            for rule_id, rule_hash in missing:
                self.set_rule_state(rule_id, rule_hash)

    def count_items(self, since: datetime | None = None) -> int:
        query = select(func.count(Item.id))
        if since is not None:
            query = query.where(Item.fetched_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_items(self, since: datetime | None = None, batch: int = 500) -> Iterator[list[tuple[int, str, str]]]:
        """(id, title, text) of stored items in batches, oldest first."""
        last = 0
        while True:
            query = select(Item.id, Item.title, Item.text).where(Item.id > last).order_by(Item.id).limit(batch)
            if since is not None:
                query = query.where(Item.fetched_at >= since)
            with self.engine.connect() as conn:
                rows = [(r.id, r.title, r.text) for r in conn.execute(query)]
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def item_detail(self, item_id: int) -> dict[str, Any] | None:
        """An item with its sources and matches (for ``tracker explain``)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Item).where(Item.id == item_id)).mappings().first()
            if row is None:
                return None
            item = {k: v for k, v in row.items() if k != "raw_html"}
            item["sources"] = [
                dict(r)
                for r in conn.execute(
                    select(Feed.name, ItemSource.entry_url, ItemSource.seen_at)
                    .join(Feed, Feed.id == ItemSource.feed_id)
                    .where(ItemSource.item_id == item_id)
                    .order_by(ItemSource.id)
                ).mappings()
            ]
            item["matches"] = [
                {**dict(r), "terms": json.loads(r["terms"]), "evidence": json.loads(r["evidence"] or "[]")}
                for r in conn.execute(
                    select(RuleMatch).where(RuleMatch.item_id == item_id).order_by(RuleMatch.score.desc())
                ).mappings()
            ]
        return item

    def raw_html(self, item_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            blob = conn.execute(select(Item.raw_html).where(Item.id == item_id)).scalar()
        return zlib.decompress(blob) if blob else None

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {_ident(table)}")).scalar_one())


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad table name {name!r}")
    return name
