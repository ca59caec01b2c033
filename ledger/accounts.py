"""The chart of accounts: which accounts exist, who owns them, and their codes.

Every entry moves money between accounts named here, and each owner's own postings in an
entry balance on their own (the bank's books balance, the borrower's books balance):
- institution: `settlement` (asset: cash at the clearing bank), `interest_income` (income),
  `fund_contributions` (expense: what a bureau paid into pools), `subsidy_budget` (asset) and
  `subsidies_paid` (expense) of a fiscal bureau;
- borrower: `cash` (asset), `interest_expense` and `fees:<kind>` (expense), `subsidy_income`
  (income);
- loan sub-ledgers: the bank's `receivable` (asset) and the borrower's `payable` (liability);
  the receivable's balance IS the loan's outstanding principal;
- programme fund: `fund` (asset: the pool's money) and `fund_capital` (equity: contributed);
- claims (docs/ACCOUNTING.md): the bank's `claim_receivable` per loan (asset: due from the
  sharing parties), `claimed` per loan (contra-asset: the loss base moved out of the loan) and
  `credit_losses` (expense: the loss it retains); each party's `claim_losses` (expense) and
  `claims_payable` (liability: shares owed and not yet paid);
- claim payments and recoveries (docs/ACCOUNTING.md): the programme fund's `claims_paid`
  (expense: the pool's shares paid out of the fund) and `recoveries` (income: recoveries
  returned into the fund); a pool's `claims_met_by_fund` (income: its shares the programme fund
  paid for it, so its own books balance); any institution's `loss_recoveries` (income: net
  recoveries it received on a loss).
"""
from __future__ import annotations

from ledger.journal import AccountSpec

FEE_KINDS = ("premium", "guarantee_fee", "appraisal_fee")


def settlement(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:settlement", "Settlement", "asset", "settlement",
                       institution_id=institution_id)


def interest_income(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:interest_income", "Interest income", "income",
                       "interest_income", institution_id=institution_id)


def fund_contributions(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:fund_contributions", "Contributions to pools",
                       "expense", "fund_contributions", institution_id=institution_id)


def borrower_cash(borrower_id: int) -> AccountSpec:
    return AccountSpec(f"borrower:{borrower_id}:cash", "Borrower cash", "asset", "cash",
                       borrower_id=borrower_id)


def borrower_interest_expense(borrower_id: int) -> AccountSpec:
    return AccountSpec(f"borrower:{borrower_id}:interest_expense", "Interest expense", "expense",
                       "interest_expense", borrower_id=borrower_id)


def borrower_fees(borrower_id: int, fee_kind: str) -> AccountSpec:
    assert fee_kind in FEE_KINDS
    return AccountSpec(f"borrower:{borrower_id}:fees:{fee_kind}", f"Fees paid: {fee_kind}",
                       "expense", f"fees_{fee_kind}", borrower_id=borrower_id)


def loan_receivable(loan_id: int, bank_id: int) -> AccountSpec:
    return AccountSpec(f"loan:{loan_id}:receivable", f"Loan {loan_id} receivable", "asset",
                       "loans_receivable", institution_id=bank_id, loan_id=loan_id)


def loan_payable(loan_id: int, borrower_id: int) -> AccountSpec:
    return AccountSpec(f"loan:{loan_id}:payable", f"Loan {loan_id} payable", "liability",
                       "loans_payable", borrower_id=borrower_id, loan_id=loan_id)


def program_fund(program_id: int) -> AccountSpec:
    return AccountSpec(f"program:{program_id}:fund", "Compensation fund", "asset", "fund_balance",
                       program_id=program_id)


def program_fund_capital(program_id: int) -> AccountSpec:
    return AccountSpec(f"program:{program_id}:fund_capital", "Contributed fund capital", "equity",
                       "fund_capital", program_id=program_id)


def subsidy_budget(institution_id: int) -> AccountSpec:
    """A fiscal bureau's subsidy budget (asset: appropriated money; subsidy payments credit it)."""
    return AccountSpec(f"inst:{institution_id}:subsidy_budget", "Subsidy budget", "asset",
                       "subsidy_budget", institution_id=institution_id)


def subsidies_paid(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:subsidies_paid", "Subsidies paid", "expense",
                       "subsidies_paid", institution_id=institution_id)


def borrower_subsidy_income(borrower_id: int) -> AccountSpec:
    return AccountSpec(f"borrower:{borrower_id}:subsidy_income", "Subsidies received", "income",
                       "subsidy_income", borrower_id=borrower_id)


def claim_receivable(loan_id: int, bank_id: int) -> AccountSpec:
    return AccountSpec(f"loan:{loan_id}:claim_receivable", f"Loan {loan_id} claim receivable",
                       "asset", "claims_receivable", institution_id=bank_id, loan_id=loan_id)


def loan_claimed(loan_id: int, bank_id: int) -> AccountSpec:
    return AccountSpec(f"loan:{loan_id}:claimed", f"Loan {loan_id} transferred to claim", "asset",
                       "loans_claimed", institution_id=bank_id, loan_id=loan_id)


def credit_losses(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:credit_losses", "Credit losses retained", "expense",
                       "credit_losses", institution_id=institution_id)


def claim_losses(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:claim_losses", "Loss shares on claims", "expense",
                       "claim_losses", institution_id=institution_id)


def claims_payable(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:claims_payable", "Claim shares payable",
                       "liability", "claims_payable", institution_id=institution_id)


def program_claims_paid(program_id: int) -> AccountSpec:
    return AccountSpec(f"program:{program_id}:claims_paid", "Claim shares paid from the fund",
                       "expense", "fund_claims_paid", program_id=program_id)


def program_recoveries(program_id: int) -> AccountSpec:
    return AccountSpec(f"program:{program_id}:recoveries", "Recoveries returned to the fund",
                       "income", "fund_recoveries", program_id=program_id)


def claims_met_by_fund(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:claims_met_by_fund",
                       "Claim shares paid by the programme fund", "income", "claims_met_by_fund",
                       institution_id=institution_id)


def loss_recoveries(institution_id: int) -> AccountSpec:
    return AccountSpec(f"inst:{institution_id}:loss_recoveries", "Recoveries on losses", "income",
                       "loss_recoveries", institution_id=institution_id)
