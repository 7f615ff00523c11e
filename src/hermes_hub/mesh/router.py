"""HTTP routes of the mesh: contracts, bids, award, claim, delivery, settlement, disputes,
requester preferences. Thin: parse, authorize, call the service in one transaction."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import Database, DatabaseDep, DbSession
from hermes_hub.errors import HubError
from hermes_hub.identity.deps import AdminUser, CurrentAgent, CurrentPrincipal
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.exact_json import ExactNumbersRoute
from hermes_hub.kit.idempotency import (
    Outcome,
    fingerprint,
    idempotency_key_header,
    run_idempotent,
)
from hermes_hub.kit.money import units_to_credits
from hermes_hub.kit.pagination import MAX_PAGE_SIZE
from hermes_hub.kit.time import utcnow
from hermes_hub.mesh import preferences as prefs
from hermes_hub.mesh import service
from hermes_hub.mesh.models import Bid, Contract
from hermes_hub.mesh.party import Party
from hermes_hub.mesh.schemas import (
    AwardOut,
    AwardRequest,
    BidCreate,
    BidOut,
    BidPlaced,
    ContractCreate,
    ContractOut,
    ContractPage,
    DeliverRequest,
    DisputeOut,
    DisputeResolution,
    DisputeResponse,
    PartyOut,
    PreferencesIn,
    PreferencesOut,
    PreviewRequest,
    RankingEntry,
    RankingOut,
    SettleRequest,
)
from hermes_hub.mesh.scoring import Candidate, rank_bids, speed_horizon
from hermes_hub.mesh.service import Access, ContractDraft, Viewer
from hermes_hub.mesh.states import ContractMode, ContractStatus
from hermes_hub.runtime import RuntimeDep
from hermes_hub.trust.levels import Complexity

IdempotencyKey = Annotated[
    str | None,
    idempotency_key_header(
        "A retry with the same key returns the first response and changes nothing; "
        "the same key with a different request is a 422."
    ),
]

router = APIRouter(prefix="/api/v1/mesh", tags=["mesh"], route_class=ExactNumbersRoute)
agent_contracts_router = APIRouter(prefix="/api/v1/agents", tags=["mesh"])
preferences_router = APIRouter(tags=["preferences"], route_class=ExactNumbersRoute)


# ---- rendering ----


def _bid_out(bid: Bid) -> BidOut:
    return BidOut(
        id=bid.id,
        contract_id=bid.contract_id,
        agent_id=bid.agent_id,
        price=bid.price_units,
        price_units=bid.price_units,
        eta_seconds=bid.eta_seconds,
        confidence=bid.confidence,
        note=bid.note,
        placed_at=bid.placed_at,
        revisions=bid.revisions,
    )


def _roles(access: Access) -> list[str]:
    roles = [
        name
        for name, held in (
            ("requester", access.requester),
            ("awarded", access.awarded),
            ("bidder", bool(access.own_bids)),
            ("admin", access.admin),
        )
        if held
    ]
    return roles or ["viewer"]


def _report_for(contract: Contract, access: Access) -> dict[str, Any] | None:
    report = contract.award_report
    if report is None or access.full:
        return report
    own = {str(bid_id) for bid_id in access.own_bids}
    # A bidder sees how its own bid fared and the winning score, not the others' prices.
    ranking = report.get("ranking", [])
    winner = next((entry for entry in ranking if entry.get("outcome") == "won"), None)
    return {
        "weights": report.get("weights"),
        "ranking": [entry for entry in ranking if entry.get("bid_id") in own],
        "winning_score": winner.get("score") if winner else None,
    }


def render(
    contract: Contract, access: Access, *, bids: Sequence[Bid] | None, bid_count: int
) -> ContractOut:
    party = access.full or access.awarded
    own_bids = [b for b in (bids or []) if b.id in access.own_bids]
    shown_bids = list(bids) if access.full and bids is not None else own_bids
    requester = (
        PartyOut(type="agent", id=contract.requester_agent_id)
        if contract.requester_agent_id is not None
        else PartyOut(type="user", id=contract.requester_owner_id)
    )
    out = ContractOut(
        id=contract.id,
        status=ContractStatus(contract.status),
        mode=ContractMode(contract.mode),
        intent=contract.intent,
        capability=contract.capability,
        complexity=Complexity(contract.complexity),
        context=contract.context,
        output_schema=contract.output_schema,
        reward=contract.reward_units,
        reward_units=contract.reward_units,
        max_price=contract.max_price_units,
        min_reputation=contract.min_reputation,
        bidding_seconds=contract.bidding_seconds,
        deadline_seconds=contract.deadline_seconds,
        delivery_window_seconds=contract.delivery_window_seconds,
        requester=requester,
        created_at=contract.created_at,
        bidding_closes_at=contract.bidding_closes_at,
        awarded_at=contract.awarded_at,
        deadline_at=contract.deadline_at,
        delivered_at=contract.delivered_at,
        auto_settle_at=contract.auto_settle_at,
        closed_at=contract.closed_at,
        bid_count=bid_count,
        your_role=_roles(access),
        awarded_agent_id=contract.awarded_agent_id,
        bids=[_bid_out(b) for b in shown_bids] if bids is not None else None,
        award_report=_report_for(contract, access) if (party or access.own_bids) else None,
    )
    if access.full:
        out.held = contract.held_units
    if party:
        out.price = contract.price_units
        out.promised_eta_seconds = contract.promised_eta_seconds
        out.delivery = contract.delivery
        out.auto_validation_score = contract.auto_validation_score
        out.validation_errors = contract.validation_errors
        out.validation_score = contract.validation_score
        out.rating = contract.rating
        out.comment = contract.comment
        out.settlement = contract.settlement
        if contract.dispute_opened_at is not None:
            out.dispute = DisputeOut(
                opened_at=contract.dispute_opened_at,
                response=contract.dispute_response,
                responded_at=contract.dispute_responded_at,
                resolution=contract.resolution,
            )
    return out


async def render_one(session: AsyncSession, contract: Contract, viewer: Viewer) -> ContractOut:
    bids = await service.bids_of(session, contract.id)
    access = service.access_with_bids(contract, viewer, bids)
    return render(contract, access, bids=bids, bid_count=len(bids))


def _dump(model: Any) -> dict[str, Any]:
    body: dict[str, Any] = model.model_dump(mode="json")
    return body


# ---- cursor ----


def _encode_cursor(contract: Contract) -> str:
    raw = f"{contract.created_at.isoformat()}|{contract.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, contract_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(contract_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HubError("The cursor is not valid.", status=400, code="invalid_cursor") from exc


# ---- mutations, all idempotent ----


async def _mutate(
    request: Request,
    database: Database,
    principal: Principal,
    key: str | None,
    payload: Any,
    work: Callable[[AsyncSession], Awaitable[Outcome]],
) -> JSONResponse:
    return await run_idempotent(
        database,
        principal=principal.rate_limit_key,
        key=key,
        request_fingerprint=fingerprint(request.method, request.url.path, payload),
        work=work,
    )


@router.post(
    "/contracts",
    status_code=status.HTTP_201_CREATED,
    response_model=ContractOut,
    operation_id="create_contract",
)
async def create_contract(
    request: Request,
    body: ContractCreate,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Post work: the most you may owe (max_price, else the reward) is held in escrow."""
    party = Party.of(principal)
    draft = ContractDraft(
        intent=body.intent,
        capability=body.capability,
        reward_units=body.reward,
        mode=body.mode,
        complexity=body.complexity,
        context=body.context,
        output_schema=body.output_schema,
        bidding_seconds=body.bidding_seconds,
        deadline_seconds=body.deadline_seconds,
        max_price_units=body.max_price,
        min_reputation=body.min_reputation,
    )
    scheduler = request.app.state.mesh_scheduler

    async def work(session: AsyncSession) -> Outcome:
        contract = await service.create_contract(
            session, requester=party, draft=draft, settings=runtime.settings, now=utcnow()
        )
        viewer = await service.viewer_of(session, principal)
        out = await render_one(session, contract, viewer)
        return Outcome(201, _dump(out))

    response = await _mutate(
        request, database, principal, idempotency_key, body.model_dump(mode="json"), work
    )
    if response.status_code == 201:
        scheduler.wake()
    return response


@router.get("/contracts", response_model=ContractPage, operation_id="list_contracts")
async def list_contracts(
    principal: CurrentPrincipal,
    session: DbSession,
    status_: Annotated[ContractStatus | None, Query(alias="status")] = None,
    capability: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(pattern="^(requester|bidder|awarded|open)$")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> ContractPage:
    """Contracts you posted, bid on or won (admins: all); ``role=open`` lists open work."""
    viewer = await service.viewer_of(session, principal)
    return await _page(
        session,
        viewer,
        service.ContractQuery(
            status=status_,
            capability=capability,
            role=role,
            limit=limit,
            after=_decode_cursor(cursor) if cursor else None,
        ),
    )


async def _page(
    session: AsyncSession, viewer: Viewer, query: service.ContractQuery
) -> ContractPage:
    rows = await service.list_contracts(
        session,
        viewer=viewer,
        query=dataclasses.replace(query, limit=query.limit + 1),
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    ids = [c.id for c in rows]
    counts: Counter[uuid.UUID] = Counter()
    own: dict[uuid.UUID, set[uuid.UUID]] = {}
    if ids:
        for contract_id, count in (
            await session.execute(
                select(Bid.contract_id, func.count())
                .where(Bid.contract_id.in_(ids))
                .group_by(Bid.contract_id)
            )
        ).all():
            counts[contract_id] = count
        if viewer.agent_ids:
            for contract_id, bid_id in (
                await session.execute(
                    select(Bid.contract_id, Bid.id).where(
                        Bid.contract_id.in_(ids), Bid.agent_id.in_(viewer.agent_ids)
                    )
                )
            ).all():
                own.setdefault(contract_id, set()).add(bid_id)
    items = []
    for contract in rows:
        access = service.access_for(contract, viewer, own.get(contract.id, ()))
        items.append(render(contract, access, bids=None, bid_count=counts[contract.id]))
    return ContractPage(
        items=items, next_cursor=_encode_cursor(rows[-1]) if more and rows else None
    )


@router.get("/contracts/{contract_id}", response_model=ContractOut, operation_id="get_contract")
async def get_contract(
    contract_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> ContractOut:
    """A contract as you may see it: bidders see their own bid, never others' prices."""
    viewer = await service.viewer_of(session, principal)
    contract, access, bids = await service.get_contract(
        session, contract_id=contract_id, viewer=viewer
    )
    return render(contract, access, bids=bids, bid_count=len(bids))


@router.post(
    "/contracts/{contract_id}/bid",
    status_code=status.HTTP_201_CREATED,
    response_model=BidPlaced,
    operation_id="place_bid",
    responses={200: {"description": "Your earlier bid was replaced."}},
)
async def place_bid(
    request: Request,
    contract_id: uuid.UUID,
    body: BidCreate,
    agent: CurrentAgent,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Bid on an open auction; bidding again replaces your bid while bidding is open."""

    async def work(session: AsyncSession) -> Outcome:
        placed = await service.place_bid(
            session,
            contract_id=contract_id,
            agent=agent,
            price_units=body.price,
            eta_seconds=body.eta_seconds,
            confidence=body.confidence,
            note=body.note,
            now=utcnow(),
        )
        out = BidPlaced(**dict(_bid_out(placed.bid)), replaced=placed.replaced)
        return Outcome(200 if placed.replaced else 201, _dump(out))

    principal = Principal(agent=agent)
    return await _mutate(
        request, database, principal, idempotency_key, body.model_dump(mode="json"), work
    )


def _ranking_entry(raw: dict[str, Any]) -> RankingEntry:
    return RankingEntry(**raw)


@router.post(
    "/contracts/{contract_id}/award", response_model=AwardOut, operation_id="award_contract"
)
async def award_contract(
    request: Request,
    contract_id: uuid.UUID,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    body: AwardRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Award now (before bidding closes): to the best bid by your preferences, or the one
    you name. The response ranks every bid with its components, score and outcome."""
    chosen = body.bid_id if body is not None else None

    async def work(session: AsyncSession) -> Outcome:
        result = await service.award(
            session,
            contract_id=contract_id,
            now=utcnow(),
            by=Party.of(principal),
            chosen_bid_id=chosen,
        )
        viewer = await service.viewer_of(session, principal)
        ranking = [_ranking_entry(service.ranking_entry(r)) for r in result.ranking]
        out = AwardOut(
            contract=await render_one(session, result.contract, viewer),
            expired=result.expired,
            weights=result.weights,
            filters=result.filters,
            ranking=ranking,
            winner=ranking[0] if ranking and ranking[0].outcome == "won" else None,
        )
        return Outcome(200, _dump(out))

    payload = {"bid_id": str(chosen) if chosen else None}
    return await _mutate(request, database, principal, idempotency_key, payload, work)


async def _transition(
    request: Request,
    database: Database,
    principal: Principal,
    key: str | None,
    payload: Any,
    action: Callable[[AsyncSession], Awaitable[Contract]],
) -> JSONResponse:
    """Run one lifecycle action idempotently and answer with the contract as the caller sees it."""

    async def work(session: AsyncSession) -> Outcome:
        contract = await action(session)
        viewer = await service.viewer_of(session, principal)
        return Outcome(200, _dump(await render_one(session, contract, viewer)))

    return await _mutate(request, database, principal, key, payload, work)


@router.post(
    "/contracts/{contract_id}/claim", response_model=ContractOut, operation_id="claim_contract"
)
async def claim_contract(
    request: Request,
    contract_id: uuid.UUID,
    agent: CurrentAgent,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Claim an open claim-mode contract: the first valid claim wins, the rest get 409."""
    return await _transition(
        request,
        database,
        Principal(agent=agent),
        idempotency_key,
        {},
        lambda session: service.claim(session, contract_id=contract_id, agent=agent, now=utcnow()),
    )


@router.post(
    "/contracts/{contract_id}/cancel", response_model=ContractOut, operation_id="cancel_contract"
)
async def cancel_contract(
    request: Request,
    contract_id: uuid.UUID,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Cancel your contract while it is still taking bids or claims; the hold is refunded."""
    return await _transition(
        request,
        database,
        principal,
        idempotency_key,
        {},
        lambda session: service.cancel(
            session, contract_id=contract_id, by=Party.of(principal), now=utcnow()
        ),
    )


@router.post(
    "/contracts/{contract_id}/deliver", response_model=ContractOut, operation_id="deliver_contract"
)
async def deliver_contract(
    request: Request,
    contract_id: uuid.UUID,
    body: DeliverRequest,
    agent: CurrentAgent,
    database: DatabaseDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Deliver the result (the winning agent, before the deadline); checked against the
    contract's output_schema if it has one."""
    return await _transition(
        request,
        database,
        Principal(agent=agent),
        idempotency_key,
        body.model_dump(mode="json"),
        lambda session: service.deliver(
            session,
            contract_id=contract_id,
            agent=agent,
            data=body.data,
            settings=runtime.settings,
            now=utcnow(),
        ),
    )


@router.post(
    "/contracts/{contract_id}/settle", response_model=ContractOut, operation_id="settle_contract"
)
async def settle_contract(
    request: Request,
    contract_id: uuid.UUID,
    body: SettleRequest,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Accept the delivery with a validation score: 0.6 or more releases escrow by the
    score tiers; under 0.6 opens a dispute."""
    return await _transition(
        request,
        database,
        principal,
        idempotency_key,
        body.model_dump(mode="json"),
        lambda session: service.settle(
            session,
            contract_id=contract_id,
            by=Party.of(principal),
            validation_score=body.validation_score,
            rating=body.rating,
            comment=body.comment,
            settings=runtime.settings,
            now=utcnow(),
        ),
    )


@router.post(
    "/contracts/{contract_id}/dispute/respond",
    response_model=ContractOut,
    operation_id="respond_to_dispute",
)
async def respond_to_dispute(
    request: Request,
    contract_id: uuid.UUID,
    body: DisputeResponse,
    agent: CurrentAgent,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The delivering agent answers a dispute with a statement and evidence."""
    return await _transition(
        request,
        database,
        Principal(agent=agent),
        idempotency_key,
        body.model_dump(mode="json"),
        lambda session: service.respond_to_dispute(
            session,
            contract_id=contract_id,
            agent=agent,
            statement=body.statement,
            evidence=body.evidence,
            now=utcnow(),
        ),
    )


@router.post(
    "/contracts/{contract_id}/dispute/resolve",
    response_model=ContractOut,
    operation_id="resolve_dispute",
)
async def resolve_dispute(
    request: Request,
    contract_id: uuid.UUID,
    body: DisputeResolution,
    admin: AdminUser,
    database: DatabaseDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Admins rule on a dispute: refund the requester, pay the agent, or split by percent."""
    return await _transition(
        request,
        database,
        Principal(user=admin),
        idempotency_key,
        body.model_dump(mode="json"),
        lambda session: service.resolve_dispute(
            session,
            contract_id=contract_id,
            admin=admin,
            outcome=body.outcome,
            percent=body.percent,
            note=body.note,
            settings=runtime.settings,
            now=utcnow(),
        ),
    )


@agent_contracts_router.get(
    "/me/contracts", response_model=ContractPage, operation_id="list_my_agent_contracts"
)
async def list_my_agent_contracts(
    agent: CurrentAgent,
    session: DbSession,
    status_: Annotated[ContractStatus | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> ContractPage:
    """The calling agent's contracts: posted, bid on or won."""
    viewer = await service.viewer_of(session, Principal(agent=agent))
    return await _page(
        session,
        viewer,
        service.ContractQuery(
            status=status_, limit=limit, after=_decode_cursor(cursor) if cursor else None
        ),
    )


# ---- preferences ----


def _preferences_out(values: prefs.PreferenceValues) -> PreferencesOut:
    return PreferencesOut(
        price_weight=values.price_weight,
        performance_weight=values.performance_weight,
        speed_weight=values.speed_weight,
        reputation_weight=values.reputation_weight,
        max_price=values.max_price_units,
        min_confidence=values.min_confidence,
        min_reputation=values.min_reputation,
        preset=values.preset,
        normalized=values.weights.as_dict(),
    )


def _values(body: PreferencesIn) -> prefs.PreferenceValues:
    return prefs.PreferenceValues(
        price_weight=body.price_weight,
        performance_weight=body.performance_weight,
        speed_weight=body.speed_weight,
        reputation_weight=body.reputation_weight,
        max_price_units=body.max_price,
        min_confidence=body.min_confidence,
        min_reputation=body.min_reputation,
    )


async def get_preferences(principal: CurrentPrincipal, session: DbSession) -> PreferencesOut:
    """Your award preferences (the balanced preset until you set any)."""
    return _preferences_out(await prefs.get_preferences(session, principal.rate_limit_key))


async def put_preferences(
    body: PreferencesIn, principal: CurrentPrincipal, session: DbSession
) -> PreferencesOut:
    """Set how bids on your contracts are weighed (0..100 each, normalized to sum 1)."""
    return _preferences_out(
        await prefs.put_preferences(session, principal.rate_limit_key, _values(body))
    )


async def apply_preset(
    name: str, principal: CurrentPrincipal, session: DbSession
) -> PreferencesOut:
    """Use a preset's weights: cheapest, fastest, premium or balanced (filters are kept)."""
    return _preferences_out(await prefs.apply_preset(session, principal.rate_limit_key, name))


async def preview_ranking(
    body: PreviewRequest, principal: CurrentPrincipal, session: DbSession
) -> RankingOut:
    """Rank a contract's bids, or hypothetical bids, by your (or the given) preferences."""
    # Whose preferences: those sent, else the contract requester's (what the award will
    # use; an owner previewing its agent's contract sees the agent's), else the caller's.
    owner_ref = principal.rate_limit_key
    labels: dict[str, str | None] = {}
    if body.contract_id is not None:
        viewer = await service.viewer_of(session, principal)
        contract, access, bids = await service.get_contract(
            session, contract_id=body.contract_id, viewer=viewer
        )
        if not access.full:
            raise service.NotRequesterError("Only the requester can preview its contract's bids.")
        owner_ref = service.requester_ref(contract)
        candidates = await service.candidates_for(session, contract, bids)
        reward, horizon = contract.reward_units, speed_horizon(contract.deadline_seconds)
    elif body.bids is not None and body.reward is not None:
        now = utcnow()
        candidates = []
        for index, bid in enumerate(body.bids):
            bid_id = uuid.UUID(int=index + 1)
            labels[str(bid_id)] = bid.label or f"bid {index + 1}"
            candidates.append(
                Candidate(
                    bid_id=bid_id,
                    agent_id=uuid.UUID(int=0),
                    price_units=bid.price,
                    eta_seconds=bid.eta_seconds,
                    confidence=bid.confidence,
                    trust=bid.trust,
                    placed_at=now.replace(microsecond=index % 1_000_000),
                )
            )
        reward, horizon = body.reward, speed_horizon(body.deadline_seconds)
    else:  # pragma: no cover - PreviewRequest's validator rules this out
        raise HubError(
            "Send contract_id, or bids with a reward.", status=422, code="invalid_preview"
        )
    values = (
        _values(body.preferences)
        if body.preferences is not None
        else await prefs.get_preferences(session, owner_ref)
    )
    ranked = rank_bids(
        candidates,
        reward_units=reward,
        horizon_seconds=horizon,
        weights=values.weights,
        filters=values.filters,
    )
    entries = []
    for entry in ranked:
        raw = service.ranking_entry(entry)
        if labels:
            raw["label"] = labels[raw["bid_id"]]
            raw["agent_id"] = None
        entries.append(_ranking_entry(raw))
    return RankingOut(
        weights=values.weights.as_dict(),
        filters={
            "max_price": float(units_to_credits(values.max_price_units))
            if values.max_price_units is not None
            else None,
            "min_confidence": values.min_confidence,
            "min_reputation": values.min_reputation,
        },
        ranking=entries,
        winner=entries[0] if entries and entries[0].outcome == "won" else None,
    )


for _base, _suffix in (
    ("/api/v1/users/me/preferences", "mine"),
    ("/api/v1/agents/me/preferences", "agent"),
):
    preferences_router.add_api_route(
        _base,
        get_preferences,
        methods=["GET"],
        response_model=PreferencesOut,
        operation_id=f"get_preferences_{_suffix}",
    )
    preferences_router.add_api_route(
        _base,
        put_preferences,
        methods=["PUT"],
        response_model=PreferencesOut,
        operation_id=f"put_preferences_{_suffix}",
    )
    preferences_router.add_api_route(
        _base + "/preset/{name}",
        apply_preset,
        methods=["PUT"],
        response_model=PreferencesOut,
        operation_id=f"apply_preference_preset_{_suffix}",
    )
    preferences_router.add_api_route(
        _base + "/preview",
        preview_ranking,
        methods=["POST"],
        response_model=RankingOut,
        operation_id=f"preview_ranking_{_suffix}",
    )

routers = (router, agent_contracts_router, preferences_router)
