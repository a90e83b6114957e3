"""Journal data as it is stored since schema 11: one version byte, then raw deflate of the entry's
canonical JSON text, primed with a dictionary of what entries say.

An entry is a few hundred bytes of JSON whose keys and common values repeat from one entry to the
next; deflate on its own finds little to match in so short a text, so it starts from DICTIONARY
(zlib's preset dictionary): the keys and values the station's code writes into entries, the most
frequent last (deflate codes a near match in fewer bits than a far one). It was written from the
code that appends entries, not from any store's contents, and is frozen: rows packed with it must
read back for as long as the records are kept. A different dictionary would be version 2, beside
this one. Rows written before schema 11 hold the JSON text itself and are read as they are.
"""

from __future__ import annotations

import zlib

VERSION = 1
_WBITS = -15  # raw deflate: the version byte says what the bytes are, no zlib header or checksum
_LEVEL = 9
# Less memory than zlib's default (8): an entry is a few hundred bytes, and setting up the larger
# tables was most of the cost of packing one (60 us against 28 us, the same bytes out).
_MEM_LEVEL = 5

# Rare entries first (events with no fill, each kind a few times a day or less), then a refused
# scan and an ended fill's causes, then the entries every fill writes, the commonest last.
DICTIONARY = "".join((
    # Checkpoints ("verified") and archives: the columns they digest and the replay state they carry.
    '{"columns":{"fills":["id","lane","cylinder_id","code","medium","operator","checker","status","tare_kg",'
    '"target_net_kg","start_gross_kg","residual_kg","cutoff_gross_kg","final_gross_kg","net_kg","outcome","cause",'
    '"detail","tripped","authorised_at","started_at","cutoff_at","finished_at","precheck_id"],'
    '"journal":["ts","lane","kind","fill_id","cylinder_id","data","prev_hash","hash"],'
    '"outbox":["id","kind","fill_id","idempotency_key","payload"]},"cursor":[0,0],"fills_rowid":',
    ',"full":false,"head":"","outbox_id":,"pieces":[["journal",0,50000,""],["fills",["outbox",],"previous":null,',
    '"state":{"fills":0,"legacy":[],"open_fills":{},"outbox":0,"shifts":{},"staff":{}},"upto":',
    '{"before":"","files":[{"checkpoint":"","fills":,"first_entry":,"head":"","last_entry":,"month":"","name":""}],"from":',
    '{"fill_context":{},"outbox":{},"shifts":[],"staff":[{"active":1,"id":"","name":"","source":"config"}]}',
    '{"backup":"","head":{"entry":,"hash":""}}',
    # The daemon, the store, staff and shifts, the staff's app, the fleet's commands.
    '{"interrupted_fills":[],"version":"0.',
    '{"error":"","unavailable_since":"',
    '{"address":"","by":"","role":"manager"}{"address":"","id":""}{"id":"","role":"checker"}',
    '{"id":"","name":"","source":"command"}{"checker":"","operator":""}',
    '{"action":"lock","detail":"","id":"","outcome":"refused","sender":"","sent_at":""}',
    '{"by":"","reason":"fleet: "}{"count":0,"how":"full"}{"by":null,"estimates":0}',
    '{"kind":"trace","outbox_id":,"reply":""}{"kind":"filling","outbox_id":,"reason":""}{"outbox_ids":[',
    '{"by":"","on_s":,"output":"valve","pulse_s":,"source":"command uid=","target":""}',
    # Lanes: holds, acknowledgements and resets.
    '{"cause":"INTERRUPTED","fill_id":"","gross_kg":,"net_kg":}',
    '{"by":"","cause":null,"detail":null,"refused":null,"source":"button","why":null}',
    # Scan points: checks, dispatches and tag bindings.
    '{"at":"","by":"","checker":"","checker_name":"","code":"","cylinder_id":"","failed":[],"fill_id":null,'
    '"flag":null,"id":"","items":{},"kind":"prefill","medium":"","passed":1,"reweigh_kg":null,"reweigh_source":null}',
    '{"at":"","by":"","courier":"","cylinder_id":"","dispatcher":"","fill_id":"","id":"","plate":""}',
    '{"at":"","by":"","by_staff":"","cylinder_id":"","id":"","photos":[{"file":""}],"stamp_code":"","tag_kind":"qr",'
    '"tag_value":""}',
    '{"rows":[{"id":,"key":"dispatch:","kind":"trace","sha256":"binding:","kind":"tag_binding","sha256":"',
    # City records that left the outbox delivered (about one entry for 50 fills).
    '{"rows":[[,"filling","","","{\\"code\\":0,\\"msg\\":\\"ok\\"}"],[,"trace","",""]]}',
    # Why a scan was refused, and why a fill ended without completing.
    '"reasons":["INVALID_CODE","UNKNOWN_CYLINDER","NOT_SELF_OWNED","SCRAPPED","SUSPENDED","INSPECTION_OVERDUE",'
    '"SERVICE_LIFE_EXCEEDED","MEDIUM_MISMATCH","NOT_REGISTERED","CACHE_STALE","BLOCKED_LOCALLY","NOT_IN_REGISTRY",'
    '"LANE_BUSY","LANE_LOCKED","NO_FILL_DATA","REMOTE_LOCK","PRECHECK_MISSING","PRECHECK_FAILED","SAME_PERSON",'
    '"INSPECTION_DUE_SOON","CACHE_AGING"]',
    '{"cause":"TARE_MISMATCH","ALREADY_FULL","AUTH_EXPIRED","OPERATOR_ABORT","SCALE_LOST","SCALE_FROZEN",'
    '"SCALE_OVERLOAD","SCALE_ERROR","IMPLAUSIBLE_WEIGHT","CYLINDER_REMOVED","MAX_FILL_TIME","OVERFILL_LIMIT",'
    '"WEIGHT_RISING_VALVE_OFF","SETTLE_TIMEOUT","RELAY_FAULT","LANE_FAULT","NO_FLOW","LOOP_STALLED","LEAK",'
    '"detail":{"elapsed_s":,"gross_kg":,"tare_kg":,"why":""},"final_gross_kg":,"finished_at":"","outcome":"aborted",'
    '"reported":false,"tripped":1}',
    '"outcome":"OVERFILLED","outcome":"UNDERFILLED"',
    '{"accepted":false,"code":"","cylinder_id":null,"details":[null],"fill_id":null,"raw_hex":"',
    '","reasons":["NOT_REGISTERED"],"source":"cache:city-timeout"}"source":"cache:city-unreachable"}'
    '"source":"cache:lane-busy"}"source":"city:unknown"}',
    # Every fill: its milestones in the order they come; the last names what it queued and taught.
    '{"residual_kg":0.,"start_gross_kg":',
    '{"started_at":"',
    '{"cutoff_at":"","cutoff_by":"predicted","cutoff_gross_kg":,"flow_kg_per_s":0.,"preact_kg":0.}',
    '{"cutoff_at":"","cutoff_by":"sample","cutoff_gross_kg":',
    '{"authorised_at":"","code":"https://","context":{"checker":"","medium":"","operator":"","precheck_id":""},'
    '"cylinder_id":"","tare_kg":,"target_net_kg":',
    '{"accepted":true,"code":"","cylinder_id":"","details":[],"fill_id":"","raw_hex":null,"reasons":[],'
    '"source":"city"}"source":"cache"}',
    '{"final_gross_kg":,"finished_at":"","inflight":{"*":{"fills":,"inflight_s":0.,"seconds":[0.,0.,0.]},"":{"fills":,'
    '"inflight_s":0.,"seconds":[0.,0.,0.]}},"net_kg":,"outcome":"ok","queued":[{"id":,"key":"","kind":"filling","sha256":""},'
    '{"id":,"key":":trace","kind":"trace","sha256":"',
    '"}]}',
    # Every entry's moments, as the station stamps them (UTC, to the millisecond).
    '"2026-01-01T00:00:00.000+00:00",',
)).encode("utf-8")


def pack(text: str) -> bytes:
    """An entry's canonical JSON text as the journal stores it."""
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    return bytes((VERSION,)) + packer.compress(text.encode("utf-8")) + packer.flush()


def unpack(value: str | bytes) -> str:
    """The canonical JSON text of a stored entry: a row written before schema 11 holds the text
    itself. ValueError when the bytes are not a packed entry (an unknown version, or deflate data
    that does not decode to the whole of valid UTF-8 text): an altered row, for `edge verify`."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes):  # a number or NULL written over a row
        raise ValueError(f"journal data is {type(value).__name__}, neither packed bytes nor text")
    if not value:
        raise ValueError("empty journal data")
    if value[0] != VERSION:
        raise ValueError(f"journal data packed with version {value[0]}, this edge reads version {VERSION}")
    unpacker = zlib.decompressobj(_WBITS, DICTIONARY)
    try:
        raw = unpacker.decompress(value[1:])
    except zlib.error as exc:
        raise ValueError(f"journal data does not decompress ({exc})") from None
    if not unpacker.eof or unpacker.unused_data:
        raise ValueError("journal data is truncated or has bytes after its end")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"journal data is not UTF-8 text ({exc})") from None
