"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request

from api.live import SessionManager
from api.sensor_roles import SensorRoleStore
from api.settings import Settings


def get_manager(request: Request) -> SessionManager:
    return request.app.state.manager


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_roles(request: Request) -> SensorRoleStore:
    return request.app.state.sensor_roles
