"""A city profile: everything about one city's traceability API that is data rather than code.

Endpoint paths, the login call, the response envelope, JSON field names per record kind, date
formats, value mappings and field length limits all live in a YAML profile under
config/profiles/. The client, the uploader and the city simulator read nothing city-specific from
anywhere else, so a second city is a second file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The record kinds we exchange, and the canonical (our) field names each may carry. A profile maps
# these names to the city's; a name outside this table is a typo in the profile.
RECORD_FIELDS: dict[str, frozenset[str]] = {
    "cylinder": frozenset(
        "id owner_unit region variety product_no medium manufacturer manufacture_month working_pressure_mpa"
        " volume_l last_inspection next_inspection unit_no status tag_kind info_code qr_content"
        " registration_no registration_date registration_authority updated_at".split()
    ),
    "filling": frozenset(
        "cylinder_id medium operator filling_date filling_unit unit_code region started_at finished_at"
        " net_kg outcome cause checker".split()
    ),
    "inspection": frozenset(
        "cylinder_id inspection_date inspection_body next_inspection conclusion inspection_type".split()
    ),
    "trace": frozenset("cylinder_id time node actor".split()),
    "tag_binding": frozenset("cylinder_id tag_kind qr_content rfid photo photo_name".split()),
    # A checker's pre- or post-fill check, for cities that take them.
    "fill_check": frozenset("cylinder_id check_kind time checker passed failed_items reweigh_kg flag".split()),
}
# Which kinds the station sends (outbox rows) and the endpoint key each is sent to.
SUBMISSIONS = {
    "filling": "filling_record", "inspection": "inspection_record", "trace": "trace_node", "tag_binding": "tag_binding",
    "fill_check": "fill_check",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


UrlPath = Annotated[str, Field(pattern=r"^/")]


# A field the client reads may sit deep in the reply: "result.page.rows" is reply["result"]["page"]["rows"].
DottedPath = Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]


class EnvelopeSpec(Strict):
    code: DottedPath = "code"
    message: DottedPath = "message"
    data: DottedPath = "data"
    success: str = "200"
    # The spec's data member is a string that often holds JSON: decode it when it does.
    data_is_json_string: bool = True
    # Envelope codes that mean "your token is no good": log in again once, then retry.
    auth_codes: list[str] = Field(default_factory=list)
    # Envelope codes that mean "busy, try later" rather than "this record is wrong".
    retry_codes: list[str] = Field(default_factory=list)
    # Envelope codes and HTTP statuses that mean "we already have this record": the city
    # de-duplicated a repeat (often on its own natural key, ignoring ours), so it is delivered.
    duplicate_codes: list[str] = Field(default_factory=list)
    duplicate_statuses: list[Annotated[int, Field(ge=200, le=599)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _codes_mean_one_thing(self) -> EnvelopeSpec:
        lists = {"auth_codes": self.auth_codes, "retry_codes": self.retry_codes, "duplicate_codes": self.duplicate_codes}
        for name, codes in lists.items():
            clash = sorted(({self.success} | {c for other, cs in lists.items() if other != name for c in cs}) & set(codes))
            if clash:
                raise ValueError(f"each envelope code in one list only ({name} repeats {clash})")
        return self


class AuthSpec(Strict):
    path: UrlPath
    username_field: str
    password_field: str
    token_field: DottedPath  # inside the envelope's data
    expires_field: DottedPath | None = None  # when the token stops working; absent = until refused
    # duration: the token lives this many expires_unit from now. absolute: it dies at this moment,
    # a number of expires_unit since the Unix epoch, or a date-time string (ISO 8601 with an
    # offset, or formats.datetime in expires_zone).
    expires_kind: Literal["duration", "absolute"] = "duration"
    expires_unit: Literal["s", "ms"] = "s"
    expires_zone: str = "Asia/Shanghai"
    # Renew this long before expiry so a call never races it; never more than half the token's
    # lifetime, so a short-lived token still serves many calls.
    renew_margin_s: float = Field(default=30.0, ge=0)
    header: str = "Authorization"
    scheme: str = "Bearer "  # prefix before the token in the header ("" for a bare token)


SignPart = Literal["app_key", "timestamp", "nonce", "secret", "params", "body"]


class SigningSpec(Strict):
    """Request signing as data. The app key is the station's city.username and the secret its
    password. The string signed is `order`'s parts joined by `join`: app_key, timestamp, nonce,
    secret, body (the JSON body exactly as sent) or params (the body's top-level fields, plus the
    elements named in params_with, sorted by name as name=value joined by pair_join; objects and
    lists as compact JSON). md5, sha256 and sm3 hash that string; hmac-sha256 keys it with the
    secret. The app key, timestamp, nonce and signature travel as headers or body fields."""

    algorithm: Literal["md5", "sha256", "hmac-sha256", "sm3"]
    place: Literal["header", "body"] = "header"
    app_key_field: str = "appKey"
    timestamp_field: str = "timestamp"
    timestamp_unit: Literal["s", "ms"] = "ms"
    nonce_field: str = "nonce"
    signature_field: str = "sign"
    order: list[SignPart] = Field(min_length=1)
    join: str = ""
    params_with: list[Literal["app_key", "timestamp", "nonce", "secret"]] = Field(default_factory=list)
    secret_param: str = "secret"  # the secret's name when params_with sorts it in
    pair_join: str = "&"
    skip_empty: bool = True  # leave null and "" values out of params
    hex_case: Literal["lower", "upper"] = "lower"

    @model_validator(mode="after")
    def _one_content(self) -> SigningSpec:
        if "params" in self.order and "body" in self.order:
            raise ValueError("signing over params or body, not both")
        if "body" in self.order and self.place == "body":
            raise ValueError("place: header when signing the body (a signature inside the body cannot sign it)")
        if self.params_with and "params" not in self.order:
            raise ValueError("params in order when params_with is given")
        return self


class IdempotencySpec(Strict):
    """Where our idempotency key travels; either may be null for a city that ignores it or
    refuses fields it does not know (then duplicate_codes says how it answers a repeat)."""

    header: str | None = "Idempotency-Key"
    field: str | None = "requestId"


class RemovedSinceSpec(Strict):
    """A separate query listing the cylinders removed from the registry since a time."""

    path: UrlPath
    since: str = "deletedSince"
    records: DottedPath = "list"  # the list inside data; each row is an object or a bare cylinder id
    id: str = "cylinderId"  # the cylinder id inside each row object
    total: DottedPath = "total"


class RemovalSpec(Strict):
    """How the city says a cylinder left its registry, for incremental pulls (a full pull that
    completes sweeps the cache whatever this says)."""

    # City status words (before value mapping) meaning the record was deregistered or deleted.
    status_words: list[str] = Field(default_factory=list)
    # A record field marking deletion, and the values that mean "deleted" (compared as text).
    deleted_field: str | None = None
    deleted_values: list[str] = Field(default_factory=lambda: ["1", "true", "y", "yes"])
    removed_since: RemovedSinceSpec | None = None


class QuerySpec(Strict):
    """The basic-data query: one cylinder by a key, or pages of cylinders changed since a time."""

    path: UrlPath
    page: str = "page"
    page_size: str = "pageSize"
    first_page: int = 1
    changed_since: str = "updatedSince"
    records: DottedPath = "records"  # list of cylinders inside data
    total: DottedPath = "total"
    server_time: DottedPath | None = None  # the registry's as-of time inside data, if the city sends it
    # Our lookup key -> the city's condition name (info_code, id, product_no, qr_content ...).
    keys: dict[str, str] = Field(min_length=1)
    max_page_size: int = Field(default=500, ge=1)
    removal: RemovalSpec = RemovalSpec()


class EndpointsSpec(Strict):
    filling_record: UrlPath
    trace_node: UrlPath | None = None
    inspection_record: UrlPath | None = None
    tag_binding: UrlPath | None = None
    fill_check: UrlPath | None = None


class FormatsSpec(Strict):
    date: str = "%Y-%m-%d"
    month: str = "%Y-%m"
    datetime: str = "%Y-%m-%d %H:%M:%S"
    # The IANA zone the city's wall times are in; absent: the station's own zone.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"an IANA time zone such as Asia/Shanghai (got {value!r})") from exc
        return value


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    description: str = ""
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    envelope: EnvelopeSpec = EnvelopeSpec()
    auth: AuthSpec
    signing: SigningSpec | None = None
    idempotency: IdempotencySpec = IdempotencySpec()
    query: QuerySpec
    endpoints: EndpointsSpec
    formats: FormatsSpec = FormatsSpec()
    # kind -> our field -> the city's JSON key.
    fields: dict[str, dict[str, str]]
    # Value vocabularies where the city's words differ from ours: medium codes, status words,
    # trace node names. ours -> theirs; the reverse is used when reading cylinders.
    values: dict[Literal["medium", "status", "node", "tag_kind", "inspection_type"], dict[str, str]] = Field(default_factory=dict)
    # kind -> our field -> the most characters the city accepts (the spec's char(n)).
    limits: dict[str, dict[str, Annotated[int, Field(ge=1)]]] = Field(default_factory=dict)

    @field_validator("fields", "limits")
    @classmethod
    def _known_kinds_and_fields(cls, value: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
        for kind, mapping in value.items():
            if kind not in RECORD_FIELDS:
                raise ValueError(f"record kinds among {sorted(RECORD_FIELDS)} (got {kind!r})")
            unknown = sorted(set(mapping) - RECORD_FIELDS[kind])
            if unknown:
                raise ValueError(f"{kind} fields among {sorted(RECORD_FIELDS[kind])} (got {unknown})")
        return value

    @model_validator(mode="after")
    def _mapped_where_used(self) -> Profile:
        for kind in ("cylinder", "filling"):
            if kind not in self.fields:
                raise ValueError(f"a field mapping for {kind} records")
        for kind, endpoint in SUBMISSIONS.items():
            if getattr(self.endpoints, endpoint) and kind not in self.fields:
                raise ValueError(f"a field mapping for {kind} records (endpoints.{endpoint} is set)")
        for mapping in self.values.values():
            if len(set(mapping.values())) != len(mapping):
                raise ValueError("value mappings that are one-to-one (two of our values map to one of theirs)")
        return self

    @field_validator("auth")
    @classmethod
    def _known_zone(cls, value: AuthSpec) -> AuthSpec:
        try:
            ZoneInfo(value.expires_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"auth.expires_zone: a time zone name such as Asia/Shanghai (got {value.expires_zone!r})") from exc
        return value

    def endpoint(self, kind: str) -> str | None:
        return getattr(self.endpoints, SUBMISSIONS[kind]) if kind in SUBMISSIONS else None


def dig(tree: Any, path: str) -> Any:
    """The value at a dotted path in nested JSON objects, or None where the path leads nowhere."""
    for part in path.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def bundled_config() -> Path:
    """The shipped config/ directory: in a source checkout beside the packages; in an installed
    wheel, where pyproject's data-files put it (PREFIX/share/station-edge/config)."""
    checkout = Path(__file__).resolve().parent.parent / "config"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "station-edge" / "config"


BUNDLED_PROFILES = bundled_config() / "profiles"


def profile_path(name: str, config_dir: Path | None = None) -> Path:
    """A profile named NAME is config/profiles/NAME.yaml beside the station config, else bundled."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        return path if path.is_absolute() or config_dir is None else config_dir / path
    local = (config_dir or Path.cwd()) / "profiles" / f"{name}.yaml"
    return local if local.exists() else BUNDLED_PROFILES / f"{name}.yaml"


def load_profile(name: str, config_dir: Path | None = None) -> Profile:
    """Load and validate a profile (the station config's loader reports problems by line)."""
    return Profile.model_validate(yaml.safe_load(profile_path(name, config_dir).read_text(encoding="utf-8")))
