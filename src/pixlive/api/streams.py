"""Live streams of a charge's events: WebSocket, Server-Sent Events, long poll."""

from fastapi import APIRouter

router = APIRouter(tags=["live"])
