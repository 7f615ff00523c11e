"""The marketplace's ten categories (seed roadmap, sprint 8) and how an agent gets one.

An agent's category is its owner's choice when set; otherwise the category whose
description is nearest to the agent's embedding, or, without a model, the one whose
description shares the most weighted terms with the agent's document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hermes_hub.discovery.text import terms


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    description: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "content-creation",
        "Content Creation",
        "Writing and producing content: articles, blog posts, marketing copy, social media "
        "posts, newsletters, scripts, video and podcast production, copywriting and editing.",
    ),
    Category(
        "data-analysis",
        "Data Analysis",
        "Analysing data: statistics, spreadsheets, dashboards, charts and visualisation, "
        "business intelligence, forecasting, data cleaning, SQL queries and reporting.",
    ),
    Category(
        "code-generation",
        "Code Generation",
        "Software development: writing, reviewing, refactoring, testing and debugging code, "
        "programming languages, APIs, databases schemas, DevOps scripts and documentation.",
    ),
    Category(
        "image-processing",
        "Image Processing",
        "Images and vision: generating pictures and illustrations, photo editing, background "
        "removal, upscaling, object detection, OCR of scans, image classification and design.",
    ),
    Category(
        "natural-language",
        "Natural Language",
        "Language tasks: translation between languages, summarisation, sentiment analysis, "
        "grammar and proofreading, text classification, entity extraction, speech to text.",
    ),
    Category(
        "research",
        "Research",
        "Research and investigation: literature reviews, academic papers, market and "
        "competitor research, fact checking, patents, web research and citations.",
    ),
    Category(
        "automation",
        "Automation",
        "Automating tasks and workflows: scheduling, booking travel and appointments, email "
        "and calendar management, web scraping, form filling, integrations and bots.",
    ),
    Category(
        "customer-service",
        "Customer Service",
        "Supporting customers: help desk tickets, live chat, answering questions, complaints, "
        "returns and refunds, onboarding, FAQs and customer satisfaction surveys.",
    ),
    Category(
        "security",
        "Security",
        "Cyber security: vulnerability scanning, penetration testing, threat detection, "
        "malware analysis, access control, compliance audits, fraud and phishing detection.",
    ),
    Category(
        "finance",
        "Finance",
        "Money and finance: accounting, bookkeeping, invoices, payments, budgeting, taxes, "
        "investing and stock markets, banking, loans, insurance and financial analysis.",
    ),
)

CATEGORY_SLUGS: tuple[str, ...] = tuple(category.slug for category in CATEGORIES)
BY_SLUG: dict[str, Category] = {category.slug: category for category in CATEGORIES}


def category_texts() -> list[str]:
    """The text embedded for each category, in ``CATEGORIES`` order."""
    return [f"{category.name}. {category.description}" for category in CATEGORIES]


def nearest_category(vector: NDArray[np.float32], category_vectors: NDArray[np.float32]) -> str:
    """The category whose (normalised) description vector is nearest to ``vector``."""
    return CATEGORIES[int(np.argmax(category_vectors @ vector))].slug


_CATEGORY_TERMS: tuple[frozenset[str], ...] = tuple(
    frozenset(terms(text)) for text in category_texts()
)


def lexical_category(weighted_terms: Mapping[str, float]) -> str | None:
    """The category sharing the most term weight with the document; None if none shares any."""
    best: tuple[float, str] | None = None
    for category, vocabulary in zip(CATEGORIES, _CATEGORY_TERMS, strict=True):
        overlap = sum(weight for term, weight in weighted_terms.items() if term in vocabulary)
        if overlap > 0 and (best is None or overlap > best[0]):
            best = (overlap, category.slug)
    return best[1] if best else None
