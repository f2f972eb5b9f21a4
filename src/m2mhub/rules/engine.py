"""The rules engine: listens on the bus, evaluates each (rule, device), acts on changes.

It never slows ingest: it reads the bus through its own bounded queue and
works in its own task. Per (rule, device) it keeps a
:class:`~m2mhub.rules.conditions.RuleState`, saved in the store whenever it
changes in a way that matters to what the rule does next (before any action
runs), so a restarted process neither fires again nor forgets a running
duration. A change of the newest evaluated reading (``last_ts``) alone is kept
in memory and written in batches every ``rules_flush_s`` and on stop, while
events go on being evaluated (docs/rules.md, "Restarts"): most readings change
nothing else, and one transaction per reading would set the engine's pace. Such
readings take a short path (:meth:`CompiledCondition.quiet`) that neither copies
the state nor builds a step. A timer (``tick``) lets time pass for durations,
count windows and silence.

Several processes may run rules on one database, each on the events of its
own ingest. Saving a state is conditional on its version: a process whose
save loses (another one saved since it read the state) loads the state from
the store and evaluates again, so a reading or a due timer another process
already acted on is not acted on twice. Actions run only after a won save.

Late and out-of-order data (docs/rules.md): a reading not newer than the
newest one a rule already evaluated for that device is skipped, and so is a
reading older than the rule's ``max_delay`` when it arrives. Both are stored
as usual; they just do not drive rules, so a device flushing an old buffer
does not start pumps for a tank level of an hour ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from m2mhub.actions.notify import is_url, mask_url
from m2mhub.audit.log import AuditLog, error_result
from m2mhub.bus import BusListener, Event, PresenceChanged, ReadingsStored
from m2mhub.core.errors import M2MHubError, NotFoundError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.ingest.pipeline import IngestBatch
from m2mhub.rules.conditions import (
    CompiledCondition,
    RuleState,
    Step,
    decode_state,
    encode_state,
)
from m2mhub.rules.expr import SELF, EvaluationError, Expression, MissingValue, parse
from m2mhub.rules.firing import FiredAlarm, Firing
from m2mhub.rules.model import Action, NotifyAction, Rule, WebhookAction, duration_ms
from m2mhub.rules.persist import BATCH, save_states
from m2mhub.rules.service import apply_rule_file, rule_of, scope_devices
from m2mhub.store.models import Alarm, Device, StoredRule

if TYPE_CHECKING:
    from m2mhub.platform import Platform

log = logging.getLogger(__name__)

RESOLVE_S: Final = 30.0
ALL_RULES: Final = 0  # rule_id of a pause that puts a device in manual mode for every rule
#: Actions that a pause (manual mode) holds back; alarms, webhooks and notifications go on.
DEVICE_ACTIONS: Final = frozenset({"command", "desired"})
#: Evaluations of one event for one (rule, device) before giving up on losing saves; each
#: loss means another process saved a newer state, so reaching it takes a busy device.
SAVE_ATTEMPTS: Final = 10
LOST: Final = "another process saved first: evaluated again from its state"
SKIPPED_OLD: Final = "skipped: out of order"
SKIPPED_LATE: Final = "skipped: late"


class TraceEntry(msgspec.Struct, frozen=True):
    """One evaluation of a rule for a device: what went in, what came out, what was done."""

    at: int  # when it was evaluated (engine clock)
    device: str
    ts: int  # the reading's timestamp, or the clock for timers
    trigger: str  # reading, timer, presence
    inputs: dict[str, Any]
    result: bool | None  # the raw test; None when it could not be evaluated
    active: bool
    transition: str | None = None
    actions: list[str] = []
    note: str | None = None


#: A trace entry as recorded: the fields of :class:`TraceEntry`, in order, with the inputs
#: as a tuple of items and the actions as a tuple. A tuple costs a fraction of a Struct to
#: build (most entries are dropped unread), and one of numbers and strings is soon no
#: longer tracked by the garbage collector, whose full collections would otherwise walk
#: the trace of every rule.
TraceRow = tuple[
    int,
    str,
    int,
    str,
    tuple[tuple[str, Any], ...],
    bool | None,
    bool,
    str | None,
    tuple[str, ...],
    str | None,
]


class LoadedRule:
    """A rule ready to run: compiled condition, resolved devices, its trace."""

    def __init__(self, stored: StoredRule, rule: Rule, trace_size: int) -> None:
        self.stored = stored
        self.rule = rule
        self.id = stored.id
        self.condition = CompiledCondition(rule) if rule.condition is not None else None
        self.compute: dict[str, Expression] = {k: parse(v) for k, v in rule.compute.items()}
        self.max_delay_ms = duration_ms(rule.max_delay)
        self.targets: dict[int, Device] = {}  # scoped devices by pk
        self.aliases: dict[str, Device] = {}
        self.alias_pks: frozenset[int] = frozenset()
        self.trace: deque[TraceRow] = deque(maxlen=trace_size)
        # Read for every event: attributes, not lookups through the rule and its condition.
        self.enabled = stored.enabled
        self.tenant_id = stored.tenant_id
        condition = self.condition
        self.reads_telemetry = condition is not None and condition.on_readings
        self.quiet = condition if condition is not None and condition.has_quiet else None

    @property
    def actor(self) -> str:
        return f"rule:{self.rule.name}"


#: A rule whose data includes a device's, as the engine's index holds it: the rule, the
#: device if it is in the rule's scope (None: only an alias), the (rule, device) key.
Watch = tuple[LoadedRule, Device | None, tuple[int, int]]


class RulesEngine:
    """Runs the rules of every tenant for one process (the ``rules`` role)."""

    def __init__(self, platform: Platform, *, clock: Callable[[], int] = now_ms) -> None:
        self.platform = platform
        self.store = platform.store
        self.clock = clock
        self.audit: AuditLog = platform.audit
        settings = platform.settings
        self.tick_s = settings.rules_tick_s
        self.flush_s = settings.rules_flush_s
        self.reload_s = settings.rules_reload_s
        self.trace_size = settings.rules_trace_size
        self.rules: dict[int, LoadedRule] = {}
        # The rules each device's data concerns (scoped to it, or naming it as an alias), in
        # rule order: an event costs the rules of its device, not every rule of the process.
        self._by_device: dict[int, list[Watch]] = {}
        # _by_device for readings, split: the watches that may take the quiet path, the rest
        self._quiet: dict[int, list[QuietWatch]] = {}
        self._others: dict[int, list[Watch]] = {}
        self._states: dict[tuple[int, int], RuleState] = {}
        self._versions: dict[tuple[int, int], int] = {}  # of each state as saved; absent: 0
        # States whose newest ``last_ts`` is not saved yet (nothing else differs from the
        # saved one): written by :meth:`flush`, every ``rules_flush_s`` and on stop.
        self._dirty: set[tuple[int, int]] = set()
        # Rows of the flush being written, as they will be stored if they win: (state, version).
        self._flushing: dict[tuple[int, int], tuple[str, int]] = {}
        self._flush_lock = asyncio.Lock()
        self._paused: set[tuple[int, int]] = set()
        self._version: tuple[int, int] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._listener = BusListener(
            platform.bus, self.handle, name="rules", lock=self._lock, wants=self._wants
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._errors = 0  # timers and given-up saves; the listener counts its own
        self.conflicts = 0  # saves lost to another process, each followed by a reload

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the rules file (if set), load the rules and start listening."""
        rules_file = self.platform.settings.rules_file
        if rules_file:
            path = Path(rules_file)
            try:
                text = await asyncio.to_thread(path.read_text)
            except OSError as exc:
                raise M2MHubError(
                    f"rules_file (M2MHUB_RULES_FILE): cannot read {path}: {exc.strerror}",
                    field="rules_file",
                ) from None
            _, applied = await apply_rule_file(self.store, text, source=str(path))
            log.info("applied %d rules from %s", len(applied), path)
        await self.reload()
        await self._listener.start()
        self._tasks = [
            asyncio.create_task(self._every(self.tick_s, self.tick), name="rules-tick"),
            asyncio.create_task(self._every(self.flush_s, self.flush), name="rules-flush"),
            asyncio.create_task(self._every(self.reload_s, self.refresh), name="rules-reload"),
        ]

    async def stop(self) -> None:
        """Finish what is queued, save what only memory holds, then stop."""
        await self._listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.flush()
        except Exception:
            self._errors += 1
            log.exception("rules: saving the newest reading times on stop failed")

    @property
    def errors(self) -> int:
        """Evaluations, timers and saves that failed in this process."""
        return self._errors + self._listener.errors

    async def drain(self) -> None:
        """Wait until every event published so far has been evaluated."""
        await self._listener.drain()

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                self._errors += 1
                log.exception("rules: %s failed", getattr(job, "__name__", job))

    # -- rules and their devices --------------------------------------------------------

    async def refresh(self) -> None:
        """Reload when rules or pauses changed (in this process or another), and every
        :data:`RESOLVE_S` for devices that joined or left a type, group or asset."""
        stale = time.monotonic() - self._loaded_at > RESOLVE_S
        if stale or await self.store.rules_version() != self._version:
            await self.reload()

    async def reload(self) -> None:
        """Load every rule, resolve its devices and load the saved state."""
        version = await self.store.rules_version()
        loaded: dict[int, LoadedRule] = {}
        for stored in await self.store.list_rules():
            previous = self.rules.get(stored.id)
            if previous is not None and previous.stored == stored:
                loaded[stored.id] = previous  # unchanged: not parsed and compiled again
                continue
            try:
                rule = rule_of(stored)
            except M2MHubError as exc:
                log.error("rule %s cannot be loaded: %s", stored.name, exc.message)
                continue
            item = LoadedRule(stored, rule, self.trace_size)
            if previous is not None:
                item.trace = previous.trace
            loaded[stored.id] = item
        await self._resolve(list(loaded.values()))
        by_device = _index_by_device(loaded.values())
        states = await self.store.versioned_rule_states([i for i in loaded if i not in self.rules])
        pauses = {(p.rule_id, p.device_pk) for p in await self.store.rule_pauses()}
        async with self._lock:
            for key, (text, saved_version) in states.items():
                self._states[key] = decode_state(text)
                self._versions[key] = saved_version
            for key in [k for k in self._states if k[0] not in loaded]:
                del self._states[key]
                self._versions.pop(key, None)
                self._dirty.discard(key)
            self.rules = loaded
            self._by_device = by_device
            self._quiet, self._others = _split(by_device)
            self._paused = pauses
            self._version = version
            self._loaded_at = time.monotonic()

    async def _resolve(self, items: list[LoadedRule]) -> None:
        """Find the devices of each rule's scope and aliases: the devices rules name by id
        in one query per tenant, and each type, group or asset once, however many rules
        share it (a reload every :data:`RESOLVE_S` must not cost a query per rule)."""
        named: dict[int, set[str]] = {}
        for item in items:
            ids = named.setdefault(item.tenant_id, set())
            if item.rule.scope.device is not None:
                ids.add(item.rule.scope.device)
            ids.update(item.rule.devices.values())
        known = {
            tenant_id: await self.store.devices_by_id(tenant_id, sorted(ids))
            for tenant_id, ids in named.items()
            if ids
        }
        scopes: dict[tuple[int, str | None, str | None, str | None], dict[int, Device]] = {}
        for item in items:
            tenant_id, scope, devices = item.tenant_id, item.rule.scope, known.get(item.tenant_id)
            targets: dict[int, Device] = {}
            aliases: dict[str, Device] = {}
            try:
                if scope.device is not None:
                    device = _named(devices, scope.device)
                    targets = {device.pk: device}
                else:
                    shared = (tenant_id, scope.type, scope.group, scope.asset)
                    if shared not in scopes:
                        scopes[shared] = await scope_devices(self.store, tenant_id, scope)
                    targets = dict(scopes[shared])
                aliases = {
                    alias: _named(devices, device_id)
                    for alias, device_id in item.rule.devices.items()
                }
            except NotFoundError as exc:
                log.warning("rule %s: %s; it watches no device", item.rule.name, exc.message)
            item.targets, item.aliases = targets, aliases
            item.alias_pks = frozenset(d.pk for d in aliases.values())

    def trace(self, rule_id: int) -> list[TraceEntry]:
        """The rule's recent evaluations, newest first."""
        item = self.rules.get(rule_id)
        if item is None:
            return []
        return [
            TraceEntry(at, device, ts, how, dict(inputs), result, active, move, list(done), note)
            for at, device, ts, how, inputs, result, active, move, done, note in reversed(
                item.trace
            )
        ]

    def state(self, rule_id: int, device_pk: int) -> RuleState | None:
        return self._states.get((rule_id, device_pk))

    # -- events -------------------------------------------------------------------------

    def _wants(self, event: Event) -> bool:
        """Whether an event may concern a rule, asked as it is published: the events of
        devices no rule watches are not queued for the engine at all."""
        if isinstance(event, ReadingsStored | PresenceChanged):
            return event.device_pk in self._by_device
        return False

    async def handle(self, event: Event) -> None:
        """Evaluate the rules an event concerns."""
        if isinstance(event, ReadingsStored):
            await self._on_readings(event)
        elif isinstance(event, PresenceChanged):
            await self._on_presence(event)

    async def _on_readings(self, event: ReadingsStored) -> None:
        readings = event.readings
        if len(readings) > 1:
            readings = sorted(readings, key=_ts_of)
        device_pk, tenant_id = event.device_pk, event.tenant_id
        now = self.clock()
        for item, condition, watched, key in self._quiet.get(device_pk, ()):
            if item.tenant_id == tenant_id and not self._evaluate_quietly(
                item, condition, watched, key, readings, now
            ):
                await self._evaluate_readings(item, watched, readings)
        for item, device, key in self._others.get(device_pk, ()):
            if item.tenant_id != tenant_id:
                continue
            if device is not None:
                if item.compute:
                    await self._compute(item, device, readings)
                if item.reads_telemetry:
                    quiet = item.quiet
                    if quiet is None or not self._evaluate_quietly(
                        item, quiet, device, key, readings, now
                    ):
                        await self._evaluate_readings(item, device, readings)
            if item.condition is not None and device_pk in item.alias_pks:
                # Another device of the expression moved: re-evaluate with latest values.
                newest = readings[-1][0]
                for target in item.targets.values():
                    if target.pk != device_pk:
                        await self._evaluate_readings(item, target, [(newest, {})], alias=True)

    def _evaluate_quietly(
        self,
        item: LoadedRule,
        condition: CompiledCondition,
        device: Device,
        key: tuple[int, int],
        readings: list[tuple[int, dict[str, Value]]],
        now: int,
    ) -> bool:
        """Evaluate readings that change nothing but ``last_ts``, the everyday case, without
        copying the state; False, with nothing done, when one of them may change more (or
        the state is not in memory yet): :meth:`_evaluate_readings` then takes them all.

        Same outcome and trace as :meth:`_evaluate_readings`: ``last_ts`` moves in the
        cached state (written by :meth:`flush`), the rest of the state stays.
        """
        state = self._states.get(key)
        if state is None:
            return False
        last_ts = state.last_ts
        oldest = now - item.max_delay_ms
        keys = condition.keys
        rows: list[TraceRow] = []
        for ts, values in readings:
            if keys and keys.isdisjoint(values):
                continue
            if last_ts is not None and ts <= last_ts:
                rows.append(_skipped(now, device, ts, state, SKIPPED_OLD))
                continue
            if ts < oldest:
                rows.append(_skipped(now, device, ts, state, SKIPPED_LATE))
                continue
            found = condition.quiet(state, ts, values)
            if found is None:
                return False
            rows.append(
                (now, device.id, ts, "reading", found[1], found[0], state.active, None, (), None)
            )
            last_ts = ts
        if last_ts != state.last_ts:
            state.last_ts = last_ts  # in place: the state is this process's own copy
            self._dirty.add(key)
        item.trace.extend(rows)
        return True

    async def _evaluate_readings(
        self,
        item: LoadedRule,
        device: Device,
        readings: list[tuple[int, dict[str, Value]]],
        *,
        alias: bool = False,
    ) -> None:
        condition = item.condition
        assert condition is not None
        now = self.clock()
        base: dict[str, dict[str, Any]] | None = None
        if condition.expression is not None:
            base = await self._latest_values(item, device)
        first = 0  # the first reading whose effect is not saved yet
        for _ in range(SAVE_ATTEMPTS):
            state = saved = await self._state(item, device)
            for index in range(first, len(readings)):
                ts, values = readings[index]
                if not alias and condition.keys and not condition.keys & values.keys():
                    continue
                if state.last_ts is not None and ts <= state.last_ts and not alias:
                    self._trace(item, device, ts, "reading", state, note=SKIPPED_OLD)
                    continue
                if ts < now - item.max_delay_ms:
                    self._trace(item, device, ts, "reading", state, note=SKIPPED_LATE)
                    continue
                view: dict[str, dict[str, Any]] = {SELF: dict(values)}
                if base is not None:
                    view = {**base, SELF: {**base.get(SELF, {}), **values}}
                step = condition.on_reading(state, ts, view)
                if step.transition is None:
                    state = step.state
                    self._trace(item, device, ts, "reading", state, step)
                    continue
                if not await self._save(item, device, step.state):
                    self._lost(item, device, ts, "reading")
                    break
                state = saved = await self._fire(item, device, step, ts, "reading")
                first = index + 1
            else:
                if state == saved:
                    return
                if _only_last_ts(saved, state):
                    # Nothing the rule does next depends on it: saved at the next flush.
                    key = (item.id, device.pk)
                    self._states[key] = state
                    self._dirty.add(key)
                    return
                if await self._save(item, device, state):
                    return
                self._lost(item, device, readings[-1][0], "reading")
        self._give_up(item, device)

    async def _on_presence(self, event: PresenceChanged) -> None:
        for item, device, _ in self._by_device.get(event.device_pk, ()):
            condition = item.condition
            if device is None or not item.enabled or condition is None or condition.on_readings:
                continue
            on_connection = partial(condition.on_connection, ts=event.ts, online=event.online)
            await self._apply(item, device, on_connection, event.ts, "presence")

    async def tick(self, now: int | None = None) -> None:
        """Let time pass for durations, count windows and silence (``no_data``)."""
        at = now if now is not None else self.clock()
        async with self._lock:
            for item in list(self.rules.values()):
                condition = item.condition
                if not item.enabled or condition is None or not condition.has_timer:
                    continue
                on_tick = partial(condition.on_tick, now=at)
                for device in item.targets.values():
                    await self._apply(item, device, on_tick, at, "timer")

    async def flush(self) -> None:
        """Save the states whose newest ``last_ts`` only memory holds, in batches.

        Each row is saved over the version this process has, like any save: where another
        process saved first, its state is loaded instead (keeping this process's newer
        ``last_ts``, see :meth:`_load`). Events are evaluated while a batch is written;
        only taking its outcome waits for the event being evaluated.
        """
        async with self._flush_lock:  # one flush at a time: a row is in flight once
            pending = list(self._dirty)  # what later evaluations add waits for the next one
            for start in range(0, len(pending), BATCH):
                await self._flush_batch(pending[start : start + BATCH])

    async def _flush_batch(self, batch: list[tuple[int, int]]) -> None:
        keys = [k for k in batch if k in self._dirty]
        self._dirty.difference_update(keys)
        states, versions, flushing = self._states, self._versions, self._flushing
        rows = []
        for key in keys:
            state = states.get(key)
            if state is not None and key[0] in self.rules:
                row = (key[0], key[1], encode_state(state), versions.get(key, 0))
                rows.append(row)
                flushing[key] = (row[2], row[3] + 1)
        if not rows:
            return
        try:
            stored = await save_states(self.store, rows)
        except BaseException:
            for row in rows:
                flushing.pop((row[0], row[1]), None)
            self._dirty.update((r[0], r[1]) for r in rows)  # the next flush tries again
            raise
        # Not while an event is half evaluated: a save of it may be waiting on this write.
        async with self._lock:
            for rule_id, device_pk, text, version in rows:
                key = (rule_id, device_pk)
                flushing.pop(key, None)
                if key not in states or versions.get(key, 0) != version:
                    continue  # saved or loaded since: what memory holds is newer than the row
                if stored[key] == (text, version + 1):
                    versions[key] = version + 1
                else:
                    self.conflicts += 1
                    self._load(key, stored[key])

    async def _apply(
        self,
        item: LoadedRule,
        device: Device,
        evaluate: Callable[[RuleState], Step],
        at: int,
        how: str,
    ) -> None:
        """Evaluate a timer or presence change, save the new state, act on a transition."""
        for _ in range(SAVE_ATTEMPTS):
            before = await self._state(item, device)
            step = evaluate(before)
            if step.state == before:
                return
            if not await self._save(item, device, step.state):
                self._lost(item, device, at, how)
                continue
            if step.transition is None:
                self._trace(item, device, at, how, step.state, step)
            else:
                await self._fire(item, device, step, at, how)
            return
        self._give_up(item, device)

    async def _state(self, item: LoadedRule, device: Device) -> RuleState:
        """The (rule, device) state as this process last saved or loaded it."""
        key = (item.id, device.pk)
        state = self._states.get(key)
        if state is None:
            state = RuleState()
            no_data = item.rule.condition.no_data if item.rule.condition else None
            if no_data is not None:
                # Silence counts from the device's last data, or from now if it never sent any.
                seen = device.last_seen_ms
                if no_data.key is not None:
                    latest = await self.store.latest([device.pk], [no_data.key])
                    found = latest.get(device.pk, {}).get(no_data.key)
                    seen = found[0] if found else None
                state.seen = seen if seen is not None else self.clock()
                if not await self._save(item, device, state):
                    return self._states.get(key, state)  # another process started it first
            self._states[key] = state
        return state

    async def _save(self, item: LoadedRule, device: Device, state: RuleState) -> bool:
        """Save ``state`` if the stored one is still the one this process has; else load
        the stored one (another process saved it) and return False."""
        key = (item.id, device.pk)
        version = self._versions.get(key, 0)
        text = encode_state(state)
        if await self.store.save_rule_state(item.id, device.pk, text, version=version):
            self._states[key] = state
            self._versions[key] = version + 1
            self._dirty.discard(key)
            return True
        saved = await self.store.rule_state(item.id, device.pk)
        if saved is not None and saved == self._flushing.pop(key, None):
            # This process's own flush of the same state (but an older last_ts) was
            # written first: not another process. Save again over it.
            self._versions[key] = saved[1]
            return await self._save(item, device, state)
        self.conflicts += 1
        self._load(key, saved)
        return False

    def _load(self, key: tuple[int, int], saved: tuple[str, int] | None) -> None:
        """Take the stored state (another process saved it) in place of the cached one.

        The newest ``last_ts`` this process evaluated is kept if the stored one is older
        (it may not have been flushed yet): within a process, a reading not newer than
        one already evaluated stays skipped. Only ``last_ts`` then differs from the
        stored state, so the key is left for the next flush.
        """
        cached = self._states.get(key)
        self._dirty.discard(key)
        if saved is None:  # the rule was deleted meanwhile
            self._states.pop(key, None)
            self._versions.pop(key, None)
            return
        state = decode_state(saved[0])
        newest = cached.last_ts if cached is not None else None
        if newest is not None and (state.last_ts is None or state.last_ts < newest):
            state.last_ts = newest
            self._dirty.add(key)
        self._states[key] = state
        self._versions[key] = saved[1]

    def _lost(self, item: LoadedRule, device: Device, ts: int, how: str) -> None:
        """Trace a lost save, with the state it loaded instead."""
        state = self._states.get((item.id, device.pk), RuleState())
        self._trace(item, device, ts, how, state, note=LOST)

    def _give_up(self, item: LoadedRule, device: Device) -> None:
        self._errors += 1
        log.error(
            "rules: %s for %s: other processes saved first %d times in a row; event dropped",
            item.rule.name,
            device.id,
            SAVE_ATTEMPTS,
        )

    async def _fire(
        self, item: LoadedRule, device: Device, step: Step, at: int, how: str
    ) -> RuleState:
        """Act on a transition whose state is saved, then save the alarm id it got.

        Returns the state now in the store (another process may have moved it on since).
        """
        key = (item.id, device.pk)
        alarm_id = (await self._act(item, device, step, at, how)).alarm_id
        for _ in range(SAVE_ATTEMPTS):
            current = self._states.get(key)
            if current is None or current.alarm_id == alarm_id:
                break
            if current.active != step.state.active:
                break  # turned over meanwhile: that transition keeps its own alarm id
            if await self._save(item, device, msgspec.structs.replace(current, alarm_id=alarm_id)):
                break
        return self._states.get(key, step.state)

    async def _latest_values(self, item: LoadedRule, device: Device) -> dict[str, dict[str, Any]]:
        pks = [device.pk, *item.alias_pks]
        latest = await self.store.latest(pks)
        view = {SELF: {k: v for k, (_, v) in latest.get(device.pk, {}).items()}}
        for alias, other in item.aliases.items():
            view[alias] = {k: v for k, (_, v) in latest.get(other.pk, {}).items()}
        return view

    # -- actions --------------------------------------------------------------------------

    async def _act(
        self, item: LoadedRule, device: Device, step: Step, at: int, how: str
    ) -> RuleState:
        """Run the actions of a transition; returns the state (with the alarm id)."""
        state = step.state
        done: list[str] = []
        rule = item.rule
        paused = (item.id, device.pk) in self._paused
        alarm = rule.alarm
        fired: Alarm | None = None
        if step.transition == "raise":
            if alarm is not None:
                fired, created = await self.platform.alarms.raise_alarm(
                    tenant_id=device.tenant_id,
                    rule_id=item.id,
                    rule_name=rule.name,
                    device_pk=device.pk,
                    device_id=device.id,
                    type=alarm.type or rule.name,
                    severity=alarm.severity,
                    message=alarm.message or rule.description or rule.name,
                    details=step.inputs,
                    actor=item.actor,
                )
                state = msgspec.structs.replace(state, alarm_id=fired.id)
                done.append(f"alarm {fired.id} {'raised' if created else 'repeated'}")
            actions = [a for a in rule.actions if a.alarm is None]
        else:
            if alarm is not None and alarm.clear:
                fired = await self.platform.alarms.clear_for(item.id, device.pk, actor=item.actor)
                if fired is not None:
                    done.append(f"alarm {fired.id} cleared")
                state = msgspec.structs.replace(state, alarm_id=None)
            actions = [a for a in rule.clear_actions if a.alarm is None]
        firing = Firing(
            rule,
            device.id,
            device.name,
            "raised" if step.transition == "raise" else "cleared",
            at,
            how,
            step.inputs,
            _fired_alarm(fired),
        )
        for action in actions:
            if paused and action.kind in DEVICE_ACTIONS:
                done.append(f"{action.kind}: skipped, rule paused for {device.id}")
                continue
            if action.webhook is not None:
                done.append(await self._webhook(item, device, action.webhook, firing))
            elif action.notify is not None:
                done.append(await self._notify(item, device, action.notify, firing))
            else:
                done.append(await self._run(item, device, action))
        self._trace(item, device, at, how, state, step, actions=done)
        return state

    async def _webhook(
        self, item: LoadedRule, device: Device, action: WebhookAction, firing: Firing
    ) -> str:
        """Queue the rule's webhook in the outbox; returns what happened, for the trace."""
        details: dict[str, Any] = {"url": action.url, "event": firing.event}
        try:
            delivery = await self.platform.webhooks.enqueue(
                tenant_id=device.tenant_id,
                source=item.actor,
                url=action.url,
                payload=firing.payload(),
                secret=action.secret,
                headers=dict(action.headers),
            )
        except M2MHubError as exc:
            await self._record(item, device, "rule.webhook", details, error_result(exc))
            return f"webhook failed: {exc.message}"
        await self._record(item, device, "rule.webhook", details | {"delivery": delivery}, "ok")
        return f"webhook {delivery} queued for {action.url}"

    async def _notify(
        self, item: LoadedRule, device: Device, action: NotifyAction, firing: Firing
    ) -> str:
        """Queue the rule's notification; returns what happened, for the trace."""
        recipients = [mask_url(r) if is_url(r) else r for r in action.recipients]
        details: dict[str, Any] = {"recipients": recipients, "event": firing.event}
        try:
            deliveries = await self.platform.notifier.notify(
                tenant_id=device.tenant_id,
                source=item.actor,
                recipients=action.recipients,
                title=firing.title(action),
                body=firing.body(action),
                severity=firing.severity(action),
                quiet_hours=action.quiet_hours.to_quiet_hours() if action.quiet_hours else None,
            )
        except M2MHubError as exc:
            await self._record(item, device, "rule.notify", details, error_result(exc))
            return f"notify failed: {exc.message}"
        await self._record(item, device, "rule.notify", details | {"deliveries": deliveries}, "ok")
        return f"notify queued for {', '.join(recipients)} ({len(deliveries)} deliveries)"

    async def _run(self, item: LoadedRule, device: Device, action: Action) -> str:
        """Run one command or desired-state action; returns what happened, for the trace."""
        platform, kind = self.platform, action.kind
        target = action.command or action.desired
        assert target is not None
        try:
            devices = await self._targets(device, target.device, target.group)
            manual = [d.id for d in devices if (ALL_RULES, d.pk) in self._paused]
            devices = [d for d in devices if (ALL_RULES, d.pk) not in self._paused]
            if not devices:
                return f"{kind}: skipped, manual mode on {', '.join(manual)}"
            if action.command is not None:
                c = action.command
                commands = await platform.commands.send(
                    devices,
                    c.method,
                    dict(c.params),
                    oneway=c.oneway,
                    ttl_ms=duration_ms(c.ttl),
                    created_by=item.actor,
                )
                result = f"command {c.method} queued for " + ", ".join(d.id for d in devices)
                details: dict[str, Any] = {"method": c.method, "commands": [c.id for c in commands]}
            else:
                assert action.desired is not None
                for other in devices:
                    await platform.commands.set_desired(
                        other, dict(action.desired.set), expected_version=None
                    )
                result = "desired set on " + ", ".join(d.id for d in devices)
                details = {"set": action.desired.set}
        except M2MHubError as exc:
            await self._record(item, device, f"rule.{kind}", {}, error_result(exc))
            return f"{kind} failed: {exc.message}"
        for other in devices:
            await self._record(item, other, f"rule.{kind}", details, "ok")
        return result

    async def _targets(
        self, device: Device, device_id: str | None, group: str | None
    ) -> list[Device]:
        if group is not None:
            found = await self.store.get_group(device.tenant_id, group)
            pks = await self.store.device_pks(device.tenant_id, group_id=found.id)
            return list((await self.store.devices_by_pk(pks)).values())
        if device_id is not None:
            return [await self.store.get_device(device_id, tenant_id=device.tenant_id)]
        return [device]

    async def _compute(
        self, item: LoadedRule, device: Device, readings: list[tuple[int, dict[str, Value]]]
    ) -> None:
        """Derived telemetry: evaluate ``compute`` per reading and ingest the results."""
        derived: list[tuple[int, dict[str, Value]]] = []
        base = {
            k: v for k, (_, v) in (await self.store.latest([device.pk])).get(device.pk, {}).items()
        }
        now = self.clock()
        for ts, values in readings:
            if values.keys() <= item.compute.keys() or ts < now - item.max_delay_ms:
                continue  # our own output coming back, or late data
            view = {SELF: {**base, **values}}
            out: dict[str, Value] = {}
            for key, expression in item.compute.items():
                try:
                    value = expression.evaluate(view)
                except (MissingValue, EvaluationError):
                    continue
                if isinstance(value, bool | int | float | str):
                    out[key] = value
            if out:
                derived.append((ts, out))
        if not derived:
            return
        try:
            device_type = await self.platform.registry.device_type_of(device)
            await self.platform.ingest(
                IngestBatch(device, device_type, derived, arrival_ms=now, source="rule")
            )
            note = f"wrote {sum(len(v) for _, v in derived)} derived values"
        except M2MHubError as exc:
            note = f"derived values refused: {exc.message}"
        item.trace.append(
            (
                now,
                device.id,
                derived[-1][0],
                "reading",
                tuple(derived[-1][1].items()),
                None,
                False,
                None,
                (),
                note,
            )
        )

    # -- trace and audit ---------------------------------------------------------------

    def _trace(
        self,
        item: LoadedRule,
        device: Device,
        ts: int,
        how: str,
        state: RuleState,
        step: Step | None = None,
        *,
        actions: list[str] | None = None,
        note: str | None = None,
    ) -> None:
        item.trace.append(
            (
                self.clock(),
                device.id,
                ts,
                how,
                tuple(step.inputs.items()) if step else (),
                step.raw if step else None,
                state.active,
                step.transition if step else None,
                tuple(actions) if actions else (),
                note or (step.note if step else None),
            )
        )

    async def _record(
        self, item: LoadedRule, device: Device, action: str, details: dict[str, Any], result: str
    ) -> None:
        """The single call point into the audit log for automatic actions."""
        try:
            await self.audit.record(
                tenant_id=device.tenant_id,
                actor=item.actor,
                action=action,
                target=f"device:{device.id}",
                details=details,
                result=result,
            )
        except M2MHubError:
            log.exception("rules: could not write the audit log")


def _index_by_device(rules: Iterable[LoadedRule]) -> dict[int, list[Watch]]:
    """Device pk -> the rules that evaluate its data: scoped to it or naming it as an alias."""
    index: dict[int, list[Watch]] = {}
    for item in rules:
        rule_id = item.id
        for pk, device in item.targets.items():
            index.setdefault(pk, []).append((item, device, (rule_id, pk)))
        for pk in item.alias_pks - item.targets.keys():
            index.setdefault(pk, []).append((item, None, (rule_id, pk)))
    return index


#: A watch whose readings the quiet path may take (:meth:`RulesEngine._evaluate_quietly`):
#: the rule, its condition, the device, the (rule, device) key.
QuietWatch = tuple[LoadedRule, CompiledCondition, Device, tuple[int, int]]


def _split(
    by_device: dict[int, list[Watch]],
) -> tuple[dict[int, list[QuietWatch]], dict[int, list[Watch]]]:
    """Each device's watches of enabled rules, for its readings: those that evaluate its
    readings and may take the quiet path with nothing else to do (no computed keys, the
    device not an alias of the rule), and the others. Checked here once rather than at every
    reading; each list keeps the order of ``by_device``."""
    quiet: dict[int, list[QuietWatch]] = {}
    others: dict[int, list[Watch]] = {}
    for pk, watches in by_device.items():
        for item, device, key in watches:
            condition = item.quiet
            if not item.enabled:
                continue
            if (
                device is not None
                and condition is not None
                and item.reads_telemetry
                and not item.compute
                and pk not in item.alias_pks
            ):
                quiet.setdefault(pk, []).append((item, condition, device, key))
            else:
                others.setdefault(pk, []).append((item, device, key))
    return quiet, others


def _named(devices: dict[str, Device] | None, device_id: str) -> Device:
    device = devices.get(device_id) if devices is not None else None
    if device is None:
        raise NotFoundError(f"device {device_id!r} not found", field="device")
    return device


def _skipped(now: int, device: Device, ts: int, state: RuleState, note: str) -> TraceRow:
    return (now, device.id, ts, "reading", (), None, state.active, None, (), note)


def _ts_of(reading: tuple[int, dict[str, Value]]) -> int:
    return reading[0]


def _only_last_ts(before: RuleState, after: RuleState) -> bool:
    """Whether ``after`` differs from ``before`` in its newest reading time alone."""
    return msgspec.structs.replace(after, last_ts=before.last_ts) == before


def _fired_alarm(alarm: Alarm | None) -> FiredAlarm | None:
    if alarm is None:
        return None
    return FiredAlarm(alarm.id, alarm.severity, alarm.type, alarm.message, alarm.status)


__all__ = ["RulesEngine", "TraceEntry"]
