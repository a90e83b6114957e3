"""Register maps: decoding checked against values worked out by hand from the manuals' formats."""

import pytest

from drivers.registers import DecimalPoint, Heartbeat, RegisterMap, StateField, StatusWord, Value
from edge.config.registers import parse_address


@pytest.mark.parametrize(
    ("written", "pdu", "kind"),
    [
        (7, 7, None),
        ("0x1000", 4096, None),
        ("40001", 0, "holding"),
        ("40008", 7, "holding"),
        ("400008", 7, "holding"),
        ("4x0008", 7, "holding"),
        ("4x8", 7, "holding"),
        ("30001", 0, "input"),
        ("465536", 65535, "holding"),
    ],
)
def test_addresses_in_pdu_and_register_notation(written: int | str, pdu: int, kind: str | None) -> None:
    assert parse_address(written) == (pdu, kind)


@pytest.mark.parametrize("written", ["40000", "4000", "50001", "x", -1, 70000, "4x0"])
def test_bad_addresses_are_refused(written: int | str) -> None:
    with pytest.raises(ValueError):
        parse_address(written)


def test_values_in_every_type_and_order() -> None:
    # 12.5 as IEEE float32 is 0x41480000.
    assert Value(0, "float32").decode([0x4148, 0x0000]) == 12.5
    assert Value(0, "float32", word_order="little").decode([0x0000, 0x4148]) == 12.5
    assert Value(0, "float32", byte_order="little").decode([0x4841, 0x0000]) == 12.5
    # 1,825 counts (18.25 kg at 0.01) as int32: high word 0, low word 0x0721.
    assert Value(0, "int32").decode([0x0000, 0x0721]) == 1825
    assert Value(0, "int32").decode([0xFFFF, 0xFFFE]) == -2
    assert Value(0, "uint32").decode([0xFFFF, 0xFFFE]) == 0xFFFFFFFE
    assert Value(0, "int16").decode([0xFFFF]) == -1
    for value in (Value(0, "int32", "little", "little"), Value(0, "float32", "little"), Value(0, "uint16")):
        assert value.decode(value.encode(1234)) == 1234


FT112 = RegisterMap(
    weight=Value(4, "int32"),
    decimals=DecimalPoint(Value(6, "uint32"), {27: 4, 28: 3, 29: 2, 30: 1, 31: 0}),
    status=(StatusWord(Value(6, "uint32"), motion_bit=2), StatusWord(Value(8, "uint32"), overload_bits=(4,), error_bits=(2,))),
    heartbeat=Heartbeat(Value(10, "uint32")),
)


def _registers(weight: int, status: int, error: int = 0, heartbeat: int = 7) -> dict[int, int]:
    words = [*Value(0, "int32").encode(weight), *Value(0, "uint32").encode(status), *Value(0, "uint32").encode(error),
             *Value(0, "uint32").encode(heartbeat)]
    return dict(zip(range(4, 12), words))


def test_decimal_point_status_and_heartbeat_bits() -> None:
    decoded = FT112.decode(_registers(1825, 1 << 29))  # two decimals, no motion
    assert decoded.gross_kg == pytest.approx(18.25) and decoded.stable is True and decoded.heartbeat == 7
    moving = FT112.decode(_registers(18250, 1 << 28 | 1 << 2))  # three decimals, motion
    assert moving.gross_kg == pytest.approx(18.25) and moving.stable is False
    assert FT112.decode(_registers(1, 1 << 29, error=1 << 4)).overload
    assert FT112.decode(_registers(1, 1 << 29, error=1 << 2)).error
    with pytest.raises(ValueError, match="no decimal-point bit"):
        FT112.decode(_registers(1825, 0))


def test_one_read_covers_nearby_values_and_far_ones_get_their_own() -> None:
    assert FT112.spans() == [(4, 8)]
    eagle = RegisterMap(weight=Value(0x1000, "float32"), heartbeat=Heartbeat(Value(0)))
    assert eagle.spans() == [(0, 1), (0x1000, 2)]


def test_a_map_without_status_leaves_stability_to_the_driver_and_nan_is_refused() -> None:
    cas = RegisterMap(weight=Value(7, "int32"), scale=0.01)
    decoded = cas.decode({7: 0, 8: 1825})
    assert decoded.gross_kg == pytest.approx(18.25) and decoded.stable is None
    eagle = RegisterMap(weight=Value(0, "float32"))
    with pytest.raises(ValueError, match="nan"):
        eagle.decode(dict(enumerate(Value(0, "float32").encode(float("nan")))))


def test_float64_spans_four_registers() -> None:
    # 17.25 as IEEE float64 is 0x4031400000000000.
    value = Value(0x20, "float64")
    assert value.width == 4
    assert value.decode([0x4031, 0x4000, 0x0000, 0x0000]) == 17.25
    assert Value(0, "float64", word_order="little").decode([0x0000, 0x0000, 0x4000, 0x4031]) == 17.25
    assert RegisterMap(weight=value).spans() == [(0x20, 4)]


def test_a_cleared_ok_bit_is_an_error() -> None:
    # Tuna ID551PN status: B12 motion, B10 over capacity, B15 weight data OK.
    registers = RegisterMap(weight=Value(0, "uint16"), status=(StatusWord(Value(1), motion_bit=12, overload_bits=(10,), ok_bits=(15,)),))
    assert not registers.decode({0: 100, 1: 0x8000}).error
    assert registers.decode({0: 100, 1: 0x0000}).error, "weight data not OK"
    assert registers.decode({0: 100, 1: 0x9000}).stable is False
    assert registers.decode({0: 100, 1: 0x8400}).overload


def test_a_status_read_from_coils_beside_a_holding_weight() -> None:
    # Minebea PR 5410: gross in words 16/17, status bits from bit address 32 (38 = stable, 32 = ADC error).
    status = StatusWord(Value(32, "uint16", kind="coil"), stable_bit=6, error_bits=(0,))
    registers = RegisterMap(weight=Value(16, "int32"), scale=0.01, status=(status,))
    assert registers.kinds() == ["holding", "coil"]
    assert registers.spans("holding") == [(16, 2)] and registers.spans("coil") == [(32, 16)]
    bits = {("coil", 32 + i): 0 for i in range(16)}
    decoded = registers.decode({16: 0, 17: 1725, **bits, ("coil", 38): 1})
    assert decoded.gross_kg == pytest.approx(17.25) and decoded.stable and not decoded.error
    assert registers.decode({16: 0, 17: 1725, **bits, ("coil", 32): 1}).error


def test_a_status_field_that_is_a_number_not_bits() -> None:
    # Bits 4..6 hold a mode: 0 stable, 1 in motion, 5 overload, 7 ADC fault; 0..5 are trustworthy.
    mode = StateField(4, 6, stable=(0,), overload=(5,), error=(7,), ok=(0, 1, 2, 3, 4, 5))
    registers = RegisterMap(weight=Value(0), status=(StatusWord(Value(1), fields=(mode,)),))
    assert registers.decode({0: 1, 1: 0x0000}).stable is True
    assert registers.decode({0: 1, 1: 0x0010}).stable is False
    assert registers.decode({0: 1, 1: 0x0050}).overload
    assert registers.decode({0: 1, 1: 0x0070}).error
    assert registers.decode({0: 1, 1: 0x0060}).error, "6 is not an OK value"
    assert not registers.decode({0: 1, 1: 0x008F}).error, "bits outside the field are not its business"


@pytest.mark.parametrize("fault", [None, "overload", "not_ok"])
@pytest.mark.parametrize("stable", [True, False])
def test_the_simulator_encodes_a_status_field_as_the_driver_decodes_it(fault: str | None, stable: bool) -> None:
    from simulators.modbus_devices import ScaleFault, SimScale
    from simulators.scale_model import ScaleModel, ScaleParams

    mode = StateField(4, 6, stable=(0,), overload=(5,), error=(7,), ok=(0, 1, 2, 3, 4, 5))
    registers = RegisterMap(weight=Value(0, "int32"), scale=0.01, status=(StatusWord(Value(2), fields=(mode,)),))
    model = ScaleModel(ScaleParams(settle_s=0.0 if stable else 1e9, noise_kg=0.0))
    model.place(17.25)
    sim = SimScale(model, registers, unit=1)
    sim.fault = ScaleFault(fault) if fault else None
    words = {address: word for (_, start), encoded in sim.register_values().items() for address, word in enumerate(encoded, start)}
    decoded = registers.decode(words)
    assert decoded.gross_kg == pytest.approx(17.25)
    assert decoded.overload is (fault == "overload")
    assert decoded.error is (fault == "not_ok")
    if fault is None:
        assert decoded.stable is stable


def test_net_and_tare_read_together_give_the_gross() -> None:
    # Flintec FT-112: 40001 actual (net) weight, 40003 tare, both int32 counts: one read of 4 registers.
    registers = RegisterMap(weight=Value(0, "int32"), tare=Value(2, "int32"), scale=0.01)
    assert registers.spans() == [(0, 4)]
    assert registers.decode({0: 0, 1: 1450, 2: 0, 3: 1525}).gross_kg == pytest.approx(29.75)


def test_the_simulator_shows_net_and_tare_that_add_up_to_the_gross() -> None:
    from simulators.modbus_devices import SimScale
    from simulators.scale_model import ScaleModel, ScaleParams

    registers = RegisterMap(weight=Value(0, "float32"), tare=Value(2, "float32"))
    model = ScaleModel(ScaleParams(settle_s=0.0, noise_kg=0.0))
    model.place(29.75)
    sim = SimScale(model, registers, unit=1)
    sim.indicator_tare_kg = 15.25
    encoded = sim.register_values()
    assert Value(0, "float32").decode(encoded[("holding", 0)]) == pytest.approx(14.5)
    words = {address: word for (_, start), values in encoded.items() for address, word in enumerate(values, start)}
    assert registers.decode(words).gross_kg == pytest.approx(29.75)
