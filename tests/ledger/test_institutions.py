"""Institution codes at the domain level (the CLI and the demo create institutions here)."""
import pytest

from ledger.errors import Invalid
from ledger.institutions import create_institution
from tests.factories import unique


@pytest.mark.parametrize("code", ["BANK\n", "BANK\r\n", "-BANK", "", "B" * 41, "ＢＡＮＫ", "BA NK", None])
def test_a_malformed_code_is_refused(engine, code):
    with engine.begin() as conn, pytest.raises(Invalid):
        create_institution(conn, code, "A bank", "bank", "440100")


def test_a_well_formed_code_of_forty_characters_is_accepted(engine):
    code = unique("B")[:8] + "x" * 32
    with engine.begin() as conn:
        assert create_institution(conn, code, "A bank", "bank", "440100").code == code
