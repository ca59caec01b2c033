"""cap usage: what each pool paid from its programme's fund (scope `fund_paid`).

A claim's fund cap is the fund's balance less what the pool owes and has not paid; the paid
part was summed over every share of the programme per claim (O(claims)). It is now one
`cap_usage` row per programme and pool, added to by each payment from the fund under the fund's
lock, and filled here from the payments already made (withdrawn claims have none).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OLD_SCOPES = "scope IN ('borrower_year', 'bank_year', 'program_year', 'all')"
NEW_SCOPES = "scope IN ('borrower_year', 'bank_year', 'program_year', 'all', 'fund_paid')"


def upgrade() -> None:
    _scopes(NEW_SCOPES)
    op.execute("""
        INSERT INTO cap_usage (program_id, institution_id, scope, scope_key, used_fen)
        SELECT c.program_id, s.institution_id, 'fund_paid', '', SUM(s.paid_fen)
        FROM claim_shares s JOIN claims c ON c.id = s.claim_id
        WHERE s.role = 'pool' AND s.paid_fen > 0
        GROUP BY c.program_id, s.institution_id""")


def downgrade() -> None:
    op.execute("DELETE FROM cap_usage WHERE scope = 'fund_paid'")
    _scopes(OLD_SCOPES)


def _scopes(condition: str) -> None:
    # The name 0006 gave it (the naming convention applied to a name already conventional).
    name = op.f("ck_cap_usage_ck_cap_usage_scope")
    with op.batch_alter_table("cap_usage") as batch_op:
        batch_op.drop_constraint(name, type_="check")
        batch_op.create_check_constraint(name, condition)
