"""Compares two sets of proto descriptors and classifies each change for wire and source compatibility.

Wire compatibility: bytes written by one side still parse to the same meaning on the other
(field numbers and types, enum numbers, RPC paths). Source compatibility: code written against
the old generated stubs still compiles and means the same (names of messages, fields, enum values,
services and methods; JSON field names follow the source names).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator

from google.protobuf import descriptor_pb2

FieldProto = descriptor_pb2.FieldDescriptorProto


class Kind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"
    RENUMBERED = "renumbered"
    CHANGED = "changed"


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between the two API versions."""

    kind: Kind
    element: str  # message | field | enum | enum value | service | method | file | package
    subject: str  # fully qualified name (with the field or value number where it matters)
    detail: str
    file: str  # the .proto file (head's, or base's for removals)
    package: str
    wire_breaking: bool
    source_breaking: bool

    @property
    def breaking(self) -> bool:
        return self.wire_breaking or self.source_breaking

    @property
    def id(self) -> str:
        """A stable name for the change, used to acknowledge it in apis/breaking-changes.yaml."""
        return f"{self.element.replace(' ', '-')}-{self.kind.value}:{self.subject}"


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    number: int
    type_signature: str


@dataclasses.dataclass(frozen=True)
class _Message:
    file: str
    package: str
    fields: dict[int, _Field]
    reserved_numbers: frozenset[int]


@dataclasses.dataclass(frozen=True)
class _Enum:
    file: str
    package: str
    values: dict[int, str]
    reserved_numbers: frozenset[int]


@dataclasses.dataclass(frozen=True)
class _Method:
    file: str
    package: str
    signature: str


@dataclasses.dataclass
class _Api:
    messages: dict[str, _Message] = dataclasses.field(default_factory=dict)
    enums: dict[str, _Enum] = dataclasses.field(default_factory=dict)
    services: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    methods: dict[str, _Method] = dataclasses.field(default_factory=dict)
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    packages: set[str] = dataclasses.field(default_factory=set)


def _type_signature(field: FieldProto) -> str:
    label = "repeated " if field.label == FieldProto.LABEL_REPEATED else ""
    type_name = field.type_name.lstrip(".") or FieldProto.Type.Name(field.type)
    return f"{label}{type_name}"


def _reserved(ranges: object, *, end_inclusive: bool) -> frozenset[int]:
    """Reserved numbers; message ranges are end-exclusive, enum ranges end-inclusive. Only the
    first 10,000 numbers of a range are listed (`reserved 1000 to max` would be millions)."""
    numbers: set[int] = set()
    for reserved in ranges:  # type: ignore[attr-defined]
        end = reserved.end + 1 if end_inclusive else reserved.end
        numbers.update(range(reserved.start, min(end, reserved.start + 10_000)))
    return frozenset(numbers)


def _walk_messages(
    prefix: str, messages: object
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for message in messages:  # type: ignore[attr-defined]
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from _walk_messages(name, message.nested_type)


def _index(descriptors: descriptor_pb2.FileDescriptorSet) -> _Api:
    api = _Api()
    for file in descriptors.file:
        package = file.package
        api.packages.add(package)
        api.files[file.name] = file.SerializeToString(deterministic=True)
        enums: list[tuple[str, descriptor_pb2.EnumDescriptorProto]] = [
            (f"{package}.{e.name}", e) for e in file.enum_type
        ]
        for name, message in _walk_messages(package, file.message_type):
            if message.options.map_entry:
                continue
            api.messages[name] = _Message(
                file=file.name,
                package=package,
                fields={
                    f.number: _Field(f.name, f.number, _type_signature(f)) for f in message.field
                },
                reserved_numbers=_reserved(message.reserved_range, end_inclusive=False),
            )
            enums.extend((f"{name}.{e.name}", e) for e in message.enum_type)
        for name, enum_proto in enums:
            api.enums[name] = _Enum(
                file=file.name,
                package=package,
                values={v.number: v.name for v in enum_proto.value},
                reserved_numbers=_reserved(enum_proto.reserved_range, end_inclusive=True),
            )
        for service in file.service:
            service_name = f"{package}.{service.name}"
            api.services[service_name] = (file.name, package)
            for method in service.method:
                signature = (
                    f"({'stream ' if method.client_streaming else ''}{method.input_type.lstrip('.')})"
                    f" returns ({'stream ' if method.server_streaming else ''}"
                    f"{method.output_type.lstrip('.')})"
                )
                api.methods[f"{service_name}.{method.name}"] = _Method(
                    file.name, package, signature
                )
    return api


def _numbered_changes(
    element: str,
    owner: str,
    file: str,
    package: str,
    base: dict[int, tuple[str, str]],
    head: dict[int, tuple[str, str]],
    head_reserved: frozenset[int],
) -> Iterator[Change]:
    """Fields or enum values, keyed by number with (name, type signature)."""
    base_by_name = {name: number for number, (name, _) in base.items()}
    head_by_name = {name: number for number, (name, _) in head.items()}

    def change(kind: Kind, subject: str, detail: str, wire: bool, source: bool) -> Change:
        return Change(kind, element, subject, detail, file, package, wire, source)

    for number, (name, signature) in sorted(head.items()):
        old = base.get(number)
        if old is None:
            if name in base_by_name:
                yield change(
                    Kind.RENUMBERED,
                    f"{owner}.{name}",
                    f"number {base_by_name[name]} -> {number}",
                    True,
                    False,
                )
            else:
                yield change(
                    Kind.ADDED, f"{owner}.{name}", f"= {number} ({signature})", False, False
                )
            continue
        old_name, old_signature = old
        if old_name != name:
            yield change(
                Kind.RENAMED,
                f"{owner}.{old_name}",
                f"{old_name} -> {name} (= {number})",
                False,
                True,
            )
        if old_signature != signature:
            yield change(
                Kind.CHANGED,
                f"{owner}.{name}",
                f"type {old_signature} -> {signature} (= {number})",
                True,
                True,
            )
    for number, (name, signature) in sorted(base.items()):
        if number in head or name in head_by_name:
            continue
        reserved = number in head_reserved
        yield change(
            Kind.REMOVED,
            f"{owner}.{name}",
            f"= {number} ({signature})"
            + (", number reserved" if reserved else ", number NOT reserved"),
            not reserved,
            True,
        )


def compare(
    base_descriptors: descriptor_pb2.FileDescriptorSet,
    head_descriptors: descriptor_pb2.FileDescriptorSet,
) -> list[Change]:
    base, head = _index(base_descriptors), _index(head_descriptors)
    changes: list[Change] = []

    for package in sorted(head.packages - base.packages):
        changes.append(Change(Kind.ADDED, "package", package, "", "", package, False, False))
    for package in sorted(base.packages - head.packages):
        changes.append(Change(Kind.REMOVED, "package", package, "", "", package, True, True))
    for name in sorted(head.files.keys() - base.files.keys()):
        changes.append(Change(Kind.ADDED, "file", name, "", name, "", False, False))
    for name in sorted(base.files.keys() - head.files.keys()):
        changes.append(Change(Kind.REMOVED, "file", name, "", name, "", False, True))

    for name, message in sorted(head.messages.items()):
        old = base.messages.get(name)
        if old is None:
            changes.append(
                Change(Kind.ADDED, "message", name, "", message.file, message.package, False, False)
            )
            continue
        changes.extend(
            _numbered_changes(
                "field",
                name,
                message.file,
                message.package,
                {n: (f.name, f.type_signature) for n, f in old.fields.items()},
                {n: (f.name, f.type_signature) for n, f in message.fields.items()},
                message.reserved_numbers,
            )
        )
    for name, message in sorted(base.messages.items()):
        if name not in head.messages:
            changes.append(
                Change(
                    Kind.REMOVED, "message", name, "", message.file, message.package, False, True
                )
            )

    for name, enum_ in sorted(head.enums.items()):
        old_enum = base.enums.get(name)
        if old_enum is None:
            changes.append(
                Change(Kind.ADDED, "enum", name, "", enum_.file, enum_.package, False, False)
            )
            continue
        changes.extend(
            _numbered_changes(
                "enum value",
                name,
                enum_.file,
                enum_.package,
                {n: (v, "") for n, v in old_enum.values.items()},
                {n: (v, "") for n, v in enum_.values.items()},
                enum_.reserved_numbers,
            )
        )
    for name, enum_ in sorted(base.enums.items()):
        if name not in head.enums:
            changes.append(
                Change(Kind.REMOVED, "enum", name, "", enum_.file, enum_.package, True, True)
            )

    for name, (file, package) in sorted(head.services.items()):
        if name not in base.services:
            changes.append(Change(Kind.ADDED, "service", name, "", file, package, False, False))
    for name, (file, package) in sorted(base.services.items()):
        if name not in head.services:
            changes.append(Change(Kind.REMOVED, "service", name, "", file, package, True, True))

    added = {n: m for n, m in head.methods.items() if n not in base.methods}
    removed = {n: m for n, m in base.methods.items() if n not in head.methods}
    for name, method in sorted(removed.items()):
        service = name.rsplit(".", 1)[0]
        twin = next(
            (
                n
                for n, m in sorted(added.items())
                if n.rsplit(".", 1)[0] == service and m.signature == method.signature
            ),
            None,
        )
        if twin is not None:
            del added[twin]
            changes.append(
                Change(
                    Kind.RENAMED,
                    "method",
                    name,
                    f"{name.rsplit('.', 1)[1]} -> {twin.rsplit('.', 1)[1]} {method.signature}",
                    method.file,
                    method.package,
                    True,  # the RPC path changes: old clients get UNIMPLEMENTED
                    True,
                )
            )
        else:
            changes.append(
                Change(
                    Kind.REMOVED,
                    "method",
                    name,
                    method.signature,
                    method.file,
                    method.package,
                    True,
                    True,
                )
            )
    for name, method in sorted(added.items()):
        changes.append(
            Change(
                Kind.ADDED,
                "method",
                name,
                method.signature,
                method.file,
                method.package,
                False,
                False,
            )
        )
    for name, method in sorted(head.methods.items()):
        old_method = base.methods.get(name)
        if old_method is not None and old_method.signature != method.signature:
            changes.append(
                Change(
                    Kind.CHANGED,
                    "method",
                    name,
                    f"{old_method.signature} -> {method.signature}",
                    method.file,
                    method.package,
                    True,
                    True,
                )
            )
    return changes


def changed_files(
    base_descriptors: descriptor_pb2.FileDescriptorSet,
    head_descriptors: descriptor_pb2.FileDescriptorSet,
) -> list[str]:
    """Proto files (paths relative to the proto root) that differ in any way, comments included."""
    base, head = _index(base_descriptors), _index(head_descriptors)
    return sorted(
        name
        for name in base.files.keys() | head.files.keys()
        if base.files.get(name) != head.files.get(name)
    )
