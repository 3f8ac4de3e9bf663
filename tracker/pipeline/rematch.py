"""Re-tagging stored items after a rule changed (``tracker rematch``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tracker.core.errors import RuleError
from tracker.core.types import Match
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import RuleSet
from tracker.store.database import Store


@dataclass(frozen=True, slots=True)
class RematchReport:
    rules: tuple[str, ...]  #: the rules that were re-applied
    items: int
    changed: int  #: (item, rule) tags added or removed


def changed_rules(store: Store, ruleset: RuleSet, only: str | None = None) -> list[str]:
    """Rules whose content differs from what the stored items were tagged with."""
    if only is not None and ruleset.get(only) is None:
        raise RuleError(f"no rule {only!r} (known: {', '.join(r.id for r in ruleset.rules)})")
    states = store.rule_states()
    return [r.id for r in ruleset.rules if (only is None or r.id == only) and states.get(r.id) != r.content_hash]


def rematch(
    store: Store,
    ruleset: RuleSet,
    *,
    rule: str | None = None,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> RematchReport:
    """Re-tag stored items with the rules that changed (idempotent: a second run does nothing).

    With ``since``, only items stored since then are re-tagged and the rules stay marked as
    changed, so that a later full run still covers the older items.
    """
    rule_ids = changed_rules(store, ruleset, rule)
    if not rule_ids:
        return RematchReport(rules=(), items=0, changed=0)
    matcher = Matcher(ruleset.only(rule_ids))
    items = changed = 0
    for batch in store.iter_items(since):
        results: dict[int, list[Match]] = {item_id: matcher.match(title, text) for item_id, title, text in batch}
        changed += store.replace_matches(rule_ids, results)
        items += len(batch)
        if progress:
            progress(len(batch))
    if since is None:
        for rule_id in rule_ids:
            store.set_rule_state(rule_id, ruleset.get(rule_id).content_hash)  # type: ignore[union-attr]
    return RematchReport(rules=tuple(rule_ids), items=items, changed=changed)
