"""The intake API's read side in one router, so the app includes it once."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import (
    access_log,
    coverage,
    devmail,
    feedback,
    feilliste,
    messages,
    register,
    replies,
    revocation,
    stats,
)

router = APIRouter()
router.include_router(messages.router)
router.include_router(replies.router)
router.include_router(feilliste.router)
router.include_router(access_log.router)
router.include_router(coverage.router)
router.include_router(stats.router)
router.include_router(devmail.router)
router.include_router(feedback.router)
router.include_router(register.router)
router.include_router(revocation.router)
