"""`/v1/accounts` and balances, scoped to what the caller may see."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, require
from api.csv_export import csv_list
from api.db import read
from api.fields import Day, Money, RequestSchema, Text
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import reads

blp = Blueprint("accounts", __name__, url_prefix="/v1/accounts",
                description="Accounts and their balances (derived from postings)")


class AccountOut(Output):
    id = fields.Integer()
    code = fields.String(metadata={"description": "unique natural key, e.g. inst:3:settlement"})
    name = fields.String()
    kind = fields.String(metadata={"description": "asset, liability, equity, income or expense"})
    purpose = fields.String()
    currency = fields.String()
    owner = fields.String(metadata={"description": "the owner's code: institution code, borrower "
                                                   "credit code, or programme code"})
    owner_kind = fields.String(metadata={"description": "institution, borrower or program"})
    loan = fields.Integer(attribute="loan_id", allow_none=True,
                          metadata={"description": "the loan of a sub-ledger account"})


class AccountQuery(PageArgs):
    owner = Text(60, metadata={"description": "institution code, borrower credit code or "
                                              "programme code"})


class BalanceQuery(RequestSchema):
    as_of = Day(metadata={"description": "effective date (inclusive); default: all"})


class BalanceOut(Output):
    account = fields.Nested(AccountOut)
    as_of = fields.Date(allow_none=True)
    balance = Money(attribute="balance_fen", allow_negative=True,
                    metadata={"description": "signed: debit positive, credit negative"})
    normal_balance = Money(attribute="normal_balance_fen", allow_negative=True,
                           metadata={"description": "on the account's natural side"})


@blp.route("")
class Accounts(MethodView):
    @csv_list()
    @blp.arguments(AccountQuery(), location="query")
    @blp.response(200, page_schema(AccountOut, "AccountPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        with read() as conn:
            rows = reads.list_accounts(conn, read_scope(), owner_code=args.get("owner"),
                                       after_id=args["after"], limit=args["limit"] + 1)
        return page(rows, args["limit"])


@blp.route("/<id:account_id>/balance")
@blp.arguments(BalanceQuery(), location="query")
@blp.response(200, BalanceOut)
@require(*ANY_ROLE)
def balance(args, account_id):
    with read() as conn:
        return reads.account_balance(conn, read_scope(), account_id, args.get("as_of"))
