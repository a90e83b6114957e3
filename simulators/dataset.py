"""A seeded, realistic cylinder registry for a station: mostly fillable, with every problem mixed in.

Each generated cylinder has a `scenario` saying what the rules should conclude, so demos and tests
can pick e.g. a scrapped cylinder without hard-coding ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from interlock.reasons import Reason

OTHER_OWNERS = ("重庆川东燃气有限公司", "重庆安达液化气站", "江北区民用燃气服务部")
MAKERS = {"118": "重庆耐德新明和工业有限公司", "205": "浙江金盾压力容器有限公司", "311": "宁波明欣化工机械有限责任公司"}
# Model -> (water volume L, typical tare kg, net fill kg) for GB 5842 LPG cylinders.
MODELS = {"YSP5": (12.0, 7.5, 4.5), "YSP15": (35.5, 15.5, 14.5), "YSP50": (118.0, 46.0, 49.5)}
QR_BASE = "https://qp.cqsjj.example.cn/trace?code="

# Share of each scenario in a generated set; the rest are fillable.
MIX: dict[str, float] = {
    Reason.NOT_SELF_OWNED: 0.06,
    Reason.SCRAPPED: 0.03,
    Reason.SUSPENDED: 0.03,
    Reason.INSPECTION_OVERDUE: 0.05,
    Reason.SERVICE_LIFE_EXCEEDED: 0.03,
    Reason.MEDIUM_MISMATCH: 0.03,
    Reason.NOT_REGISTERED: 0.03,
    Reason.BLOCKED_LOCALLY: 0.01,
    Reason.INSPECTION_DUE_SOON: 0.05,
}


@dataclass(frozen=True)
class Generated:
    row: dict[str, Any]
    scenario: str  # "ok" or the Reason the rules should give
    block_reason: str | None = None


def _month(day: date, months: int) -> str:
    index = day.year * 12 + day.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def generate(count: int, owner_unit: str, region: str, today: date, seed: int = 2026) -> list[Generated]:
    rng = random.Random(seed)
    scenarios = list(MIX) + ["ok"]
    weights = list(MIX.values()) + [1.0 - sum(MIX.values())]
    out: list[Generated] = []
    for index in range(count):
        # The first cylinders cover every scenario once, so even a small set has them all.
        scenario = scenarios[index] if index < len(scenarios) else rng.choices(scenarios, weights)[0]
        out.append(_cylinder(rng, index, scenario, owner_unit, region, today))
    return out


def _cylinder(rng: random.Random, index: int, scenario: str, owner: str, region: str, today: date) -> Generated:
    model = rng.choices(list(MODELS), weights=[2, 10, 1])[0]
    volume, tare, net = MODELS[model]
    tare = round(tare + rng.uniform(-0.6, 0.6), 1)
    age_months = rng.randint(6, 80)
    if scenario == Reason.SERVICE_LIFE_EXCEEDED:
        age_months = rng.randint(8 * 12 + 2, 11 * 12)
    made = _month(today, -age_months)
    maker = rng.choice(list(MAKERS))
    serial = f"{index + 1:07d}"
    next_due = _month(today, rng.randint(3, 40))
    if scenario == Reason.INSPECTION_OVERDUE:
        next_due = _month(today, -rng.randint(1, 14))
    elif scenario == Reason.INSPECTION_DUE_SOON:
        next_due = _month(today, 0)
    info_code = f"CQ{region}{index + 1:08d}"
    row: dict[str, Any] = {
        "id": f"500{region[-3:]}{index + 1:09d}",
        "owner_unit": rng.choice(OTHER_OWNERS) if scenario == Reason.NOT_SELF_OWNED else owner,
        "region": region,
        "variety": "2320",
        "product_no": f"{model}-{made[2:4]}{serial}",
        "medium": "G10" if scenario == Reason.MEDIUM_MISMATCH else "G13",
        "manufacturer": MAKERS[maker],
        "manufacture_month": made,
        "working_pressure_mpa": 2.1,
        "volume_l": volume,
        "last_inspection": f"{_month(today, -rng.randint(1, 30))}-15",
        "next_inspection": next_due,
        "unit_no": f"YN-{index + 1:05d}",
        "status": {Reason.SCRAPPED: "报废", Reason.SUSPENDED: "停用"}.get(scenario, "在用"),
        "tag_kind": "二维码",
        "info_code": info_code,
        "qr_content": QR_BASE + info_code,
        "registration_no": None if scenario == Reason.NOT_REGISTERED else f"渝{region}-{index + 1:06d}",
        "registration_date": f"{made}-20",
        "registration_authority": "重庆市渝北区市场监督管理局",
        "tare_kg": tare,
        "fill_mass_kg": net,
        "model": model,
        "traceable_code": f"{maker}{made[2:4]}{serial}",
        "rfid": f"E200{index + 1:020X}",
    }
    block = "外观严重腐蚀 / badly corroded" if scenario == Reason.BLOCKED_LOCALLY else None
    return Generated(row, str(scenario), block)
