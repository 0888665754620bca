"""GET /dev/mail: the emails the dev mail sink caught (KPR_ENV=dev only, and only to a
client on loopback; 404 elsewhere: it has no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from app.dev.devsink import SavedMail, saved_mail, saved_mails
from app.exposure import is_loopback
from app.http_deps import app_state
from app.platform.settings import Env, Settings

router = APIRouter(prefix="/dev", tags=["dev"], include_in_schema=False)


class MailOut(BaseModel):
    name: str
    to: str
    subject: str
    date: str
    body: str


def _dev_settings(request: Request) -> Settings:
    settings = app_state(request).settings
    client = request.client.host if request.client else None
    if settings.env is not Env.DEV or not is_loopback(client):
        raise HTTPException(404, "not found")
    return settings


def _out(mail: SavedMail) -> MailOut:
    return MailOut(name=mail.name, to=mail.to, subject=mail.subject, date=mail.date, body=mail.body)


@router.get("/mail", response_model=list[MailOut])
def list_mail(request: Request) -> list[MailOut]:
    """Newest first. (Plain `def`: FastAPI runs file reads in its thread pool.)"""
    return [_out(m) for m in saved_mails(_dev_settings(request).mail_dir)]


@router.get("/mail/{name}", response_model=MailOut)
def show_mail(name: str, request: Request) -> MailOut:
    found = saved_mail(_dev_settings(request).mail_dir, name)
    if found is None:
        raise HTTPException(404, "no such mail")
    return _out(found)
