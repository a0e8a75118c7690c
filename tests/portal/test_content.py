"""The information services' content (portal/content/), on SQLite and PostgreSQL: the generated
sample set imports; a corrupt or inconsistent set is refused with file and line and leaves the
previous content as it was; SVG drawings lose scripts, event attributes and external references;
search is filtered to the vehicle, ranked, with snippets; links from a DTC and a VIN's campaigns."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ContentError
from portal.content import format, sample, search, store, svg
from portal.db.content_models import InfoDocument

G30, F30 = "WBAJA71090B123456", "WBA8E9C50GK123456"
"""the simulated cars' VINs (firmware_py/sim/vehicles/)"""


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample.write(out)
    return out


@pytest.fixture
def loaded(factory: sessionmaker[Session], sample_dir: Path) -> sessionmaker[Session]:
    store.load(factory, format.read(sample_dir), now=1_790_000_000)
    return factory


def state(factory: sessionmaker[Session]) -> tuple[object, ...]:
    with factory() as session:
        found = store.current(session)
        assert found is not None
        count = session.scalar(select(func.count()).select_from(InfoDocument))
        titles = tuple(session.scalars(select(InfoDocument.title).order_by(InfoDocument.id)))
        hits = tuple(h.ref for h in search.search(session, "boost pressure"))
        return found.id, found.content_version, count, titles, hits


def broken(sample_dir: Path, tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of the sample set with ``old`` replaced by ``new`` in ``file``."""
    copy = tmp_path / "broken"
    shutil.copytree(sample_dir, copy)
    path = copy / file
    text = path.read_text()
    assert old in text, (file, old)
    path.write_text(text.replace(old, new, 1))
    return copy


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # TOML syntax: the parser's line
        ("instructions/RI-DME-12A100.toml", "summary = {", 'summary = {""x', "not TOML"),
        # a text in several languages: English required, known languages only, none empty
        (
            "instructions/RI-DME-12A100.toml",
            'summary = { en = "What to do',
            'summary = { fr = "Que faire", xx = "?", en = "What to do',
            "summary: unknown language(s) 'fr', 'xx'; known: en, de",
        ),
        (
            "bulletins/SB-12-04-SAMPLE.toml",
            'title = { en = "Boost pressure too low after cold start (service bulletin)", ',
            "title = { ",
            "title: the en text is missing",
        ),
        (
            "parts.toml",
            'de = "Motorelektronik mit Sensoren"',
            'de = " "',
            "title: de: must be a non-empty string",
        ),
        # a DTC of the wrong form
        (
            "instructions/RI-DME-12A100.toml",
            'dtcs = ["12A100"]',
            'dtcs = ["12A1000"]',
            "dtcs: '12A1000' is not a DTC",
        ),
        # a reference to a wiring diagram the set does not have
        (
            "instructions/RI-DSC-480A00.toml",
            'wiring = ["WD-DSC-480A00"]',
            'wiring = ["WD-NOPE"]',
            "'WD-NOPE' is not a wiring diagram of this set",
        ),
        # a pin the drawing does not name
        (
            "wiring/WD-HU-B7F320.toml",
            'pins = ["1", "2", "3"]',
            'pins = ["1", "2", "9"]',
            "the drawing has no data-pin=X09901.'9'",
        ),
        # a campaign's vehicle with a malformed VIN, in the 2nd [[vehicle]] table
        (
            "bulletins/CAMPAIGN-0032-SAMPLE.toml",
            f'vin = "{F30}"',
            'vin = "WBA8E9C50GK12345"',
            "vin: is not a 17-character VIN",
        ),
        # labour units for a series the set does not know
        (
            "labour.toml",
            "units = { G30 = 4, F30 = 4 }",
            "units = { G30 = 4, E90 = 4 }",
            "the series 'E90' is not in vehicles.toml",
        ),
        # a part in a group that does not exist
        ("parts.toml", 'group = "62 DME"', 'group = "62 NOPE"', "'62 NOPE' is not a [[group]]"),
        # a newer format than this portal reads
        ("manifest.toml", "format = 1", "format = 2", "format 2 is not supported"),
    ],  # fmt: skip
)
def test_a_corrupt_set_is_refused_with_file_and_line_and_changes_nothing(
    loaded: sessionmaker[Session], sample_dir: Path, tmp_path: Path,
    file: str, old: str, new: str, expected: str,
) -> None:  # fmt: skip
    before = state(loaded)
    bad = broken(sample_dir, tmp_path, file, old, new)
    with pytest.raises(ContentError) as refused:
        store.load(loaded, format.read(bad))
    line = line_of(bad / file, new)
    problem = next(p for p in refused.value.problems if expected in p)
    assert problem.startswith(f"{file}:{line}: "), (problem, line)
    assert "Correct the files" in str(refused.value)
    assert state(loaded) == before


def test_a_hostile_drawing_is_refused_or_cleaned(sample_dir: Path, tmp_path: Path) -> None:
    drawing = "wiring/WD-DME-12A100.svg"
    # a DTD (entity expansion, external entities) is refused with the file named
    dtd = broken(sample_dir, tmp_path, drawing, "<svg ",
                 '<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg ')  # fmt: skip
    with pytest.raises(ContentError) as refused:
        format.read(dtd)
    assert any(p.startswith(f"{drawing}:1: refused: a DTD") for p in refused.value.problems)
    # scripts, event attributes, style, external references and foreign content are removed
    hostile = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'onload="alert(1)"><script>alert(2)</script><rect width="9" style="x:url(http://e/)" '
        b'onclick="alert(3)" fill="url(#ok)" stroke="url(http://e/x)" data-connector="X1"/>'
        b'<image href="http://e/i.png"/><use xlink:href="http://e/s.svg#a"/><use href="#a"/>'
        b'<a href="javascript:alert(4)"><text>t</text></a><foreignObject><p xmlns='
        b'"http://www.w3.org/1999/xhtml">x</p></foreignObject><text>Pin 1</text></svg>'
    )
    clean = svg.sanitise(hostile)
    for gone in ("script", "alert", "onload", "onclick", "style", "http://e", "javascript",
                 "foreignObject", "<image", "<a "):  # fmt: skip
        assert gone not in clean.svg, gone
    assert 'fill="url(#ok)"' in clean.svg and 'href="#a"' in clean.svg
    assert "Pin 1" in clean.svg and clean.connectors == {"X1"}


def test_a_zip_that_leaves_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("manifest.toml", "format = 1\n")
        z.writestr("../../outside.toml", "x = 1\n")
    with pytest.raises(ContentError, match="leaves the set"):
        format.read(archive)
    assert not (tmp_path.parent / "outside.toml").exists()


def test_the_sample_set_imports_from_a_zip_with_the_command(
    db_url: str, sample_dir: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "sample.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(sample_dir.rglob("*")):
            z.write(path, Path("sample") / path.relative_to(sample_dir))
    cli = [sys.executable, "-m", "portal.cli", "content"]
    if db_url.startswith("postgresql"):
        subprocess.run([*cli[:3], "db", "upgrade", "--db", db_url], check=True, timeout=60)
    done = subprocess.run([*cli, "import", str(archive), "--db", db_url],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "imported sample sample-2026.11 (6 instructions" in done.stdout
    shown = subprocess.run([*cli, "show", "--db", db_url], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert shown.stdout.startswith("sample sample-2026.11: 37 documents")


def test_search_is_ranked_filtered_to_the_vehicle_with_snippets(
    loaded: sessionmaker[Session],
) -> None:
    with loaded() as session:
        hits = search.search(session, "boost pressure", "JA71")
        refs = [h.ref for h in hits]
        assert {"RI-DME-12A100", "SB-12-04-SAMPLE", "WD-DME-12A100"} <= set(refs)
        assert [h.rank for h in hits] == sorted((h.rank for h in hits), reverse=True)
        instruction = next(h for h in hits if h.ref == "RI-DME-12A100")
        assert f"{search.MARK}Boost{search.END}" in instruction.snippet
        # the display form of a DTC finds what names it
        assert {"RI-DME-12A100", "SB-12-04-SAMPLE"} <= {
            h.ref for h in search.search(session, "P12A1-00")
        }
        # a campaign only for the G30's type code: found for the G30, not for the F30
        clip = "occupancy mat connector clip"
        assert "CAMPAIGN-0047-SAMPLE" in [h.ref for h in search.search(session, clip, "JA71")]
        assert "CAMPAIGN-0047-SAMPLE" not in [h.ref for h in search.search(session, clip, "8E9C")]
        # the engines' query syntax never reaches them
        for odd in ('"', "boost OR", "NEAR(", "*", "a:b", "-", "'; DROP TABLE x; --", "ü"):
            search.search(session, odd, "JA71")
        assert search.search(session, "", "JA71") == []


def test_links_from_a_dtc_and_a_vins_campaigns(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        named = [d.ref for d in store.linked(session, "dtc", "12A100", G30)]
        assert named == ["RI-DME-12A100", "SB-12-04-SAMPLE"]
        assert [d.ref for d in store.linked(session, "dtc", "12A100", "WBAXX00000B123456")] == []
        g30 = [(d.ref, s) for d, s in store.campaigns(session, G30, 2026)]
        assert g30 == [("CAMPAIGN-0032-SAMPLE", "open"), ("CAMPAIGN-0047-SAMPLE", "open")]
        f30 = [(d.ref, s) for d, s in store.campaigns(session, F30, 2026)]
        assert f30 == [("CAMPAIGN-0032-SAMPLE", "done")]
        # outside the campaign's serial range: not concerned
        other = G30[:10] + "C123456"
        assert [d.ref for d, _ in store.campaigns(session, other, 2026)] == ["CAMPAIGN-0032-SAMPLE"]
        newer = [s.version for s in store.software(session, "8487512") if s.process_class == "SWFL"]
        assert "41.8.0" in newer


def test_the_longest_values_the_validation_allows_fit_the_database(
    factory: sessionmaker[Session], sample_dir: Path, tmp_path: Path
) -> None:
    """Every length the validation lets through is stored (PostgreSQL enforces column lengths):
    an import must never pass the checks and then fail in the database."""
    copy = tmp_path / "long"
    shutil.copytree(sample_dir, copy)

    def edit(file: str, old: str, new: str) -> None:
        path = copy / file
        assert old in path.read_text(), (file, old)
        path.write_text(path.read_text().replace(old, new))

    long_id = "R" * 64
    edit("manifest.toml", 'content_version = "sample-2026.11"', f'content_version = "{"9" * 40}"')
    edit(
        "vehicles.toml",
        'name = "5 Series Sedan (G30) 530i"',
        f'name = "{"n" * format.MAX_VEHICLE_NAME}"',
    )
    edit("instructions/RI-DME-12A100.toml", 'id = "RI-DME-12A100"', f'id = "{long_id}"')
    edit("instructions/RI-DME-12A100.toml",
         'title = { en = "Boost pressure too low: diagnosis and repair", '
         'de = "Ladedruck zu niedrig: Diagnose und Reparatur" }',
         f'title = {{ en = "{"t" * 300}", de = "{"ü" * 300}" }}')  # fmt: skip
    edit("labour.toml", 'code = "00 00 010"', f'code = "{"0" * 32}"')
    edit("instructions/RI-DME-12A100.toml", '"00 00 010"', f'"{"0" * 32}"')
    for path in (copy / "instructions").glob("*.toml"):
        path.write_text(path.read_text().replace('"00 00 010"', f'"{"0" * 32}"'))
    edit("bulletins/CAMPAIGN-0032-SAMPLE.toml", '"00 00 010"', f'"{"0" * 32}"')
    long_svg = "W" * (format.MAX_DRAWING_FILE - 4) + ".svg"
    (copy / "wiring" / "WD-DME-12A100.svg").rename(copy / "wiring" / long_svg)
    edit("wiring/WD-DME-12A100.toml", 'drawing = "WD-DME-12A100.svg"', f'drawing = "{long_svg}"')
    edit("parts.toml", 'description = { en = "Boost pressure sensor", de = "Ladedrucksensor" }',
         f'description = "{"d" * 300}"')  # fmt: skip
    store.load(factory, format.read(copy))
    with factory() as session:
        assert store.document(session, "instruction", long_id) is not None
        assert store.drawing(session, f"wiring/{long_svg}") is not None


TAGS = ["svg", "g", "rect", "text", "use", "script", "style", "image", "a", "foreignObject",
        "set", "animate", "iframe", "title", "path"]  # fmt: skip
ATTRS = ["onload", "onclick", "OnMouseOver", "style", "href", "xlink:href", "fill", "id",
         "data-pin", "xml:base", "transform", "src", "begin", "values"]  # fmt: skip
VALUES = ["#a", "url(#a)", "url(http://e/x)", "javascript:alert(1)", "&#106;avascript:x",
          "data:text/html,x", "//e/x", "red", "x url( #a ) url(https://e)"]  # fmt: skip


@given(st.recursive(
    st.tuples(st.sampled_from(TAGS), st.lists(st.tuples(st.sampled_from(ATTRS),
              st.sampled_from(VALUES)), max_size=4), st.just([])),
    lambda children: st.tuples(st.sampled_from(TAGS), st.lists(st.tuples(
        st.sampled_from(ATTRS), st.sampled_from(VALUES)), max_size=4), st.lists(children, max_size=4)),
    max_leaves=12,
))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_no_drawing_keeps_a_script_a_handler_or_an_outside_reference(tree: tuple) -> None:  # type: ignore[type-arg]
    def xml(node: tuple) -> str:  # type: ignore[type-arg]
        tag, attrs, children = node
        text = "".join(f' {k}="{v}"' for k, v in dict(attrs).items())
        return f"<{tag}{text}>{''.join(xml(c) for c in children)}</{tag}>"

    root = ("svg", tree[1], [tree]) if tree[0] != "svg" else tree
    source = xml(root).replace(
        "<svg",
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"',
        1,
    )
    clean = svg.sanitise(source.encode())
    parsed = ET.fromstring(clean.svg)
    for element in parsed.iter():
        assert element.tag.rpartition("}")[2] in svg.ELEMENTS
        for key, value in element.attrib.items():
            name = key.rpartition("}")[2].lower()
            assert not name.startswith("on") and name not in ("style", "src", "base"), key
            assert "javascript" not in value.lower() and "data:" not in value
            assert "//" not in value and "url(" not in value.replace("url(#a)", "")
            if name == "href":
                assert value.startswith("#")
