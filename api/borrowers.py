"""`/v1/borrowers`: each bank's customer file of enterprises, their dated facts and SME class."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, principal, require
from api.db import read, tx
from api.fields import Boolean, Choice, CreditCode, Day, Integer, Money, Region, RequestSchema, Text, Code
from api.idempotency import write
from api.openapi import Output
from api.scope import read_scope
from ledger import parties
from ledger.errors import Invalid
from ledger.sme import INDUSTRIES

FILE_RULE = (
    "A bank's borrower records are its own customer file: a bank key reads and changes only the "
    "records its bank posted (another bank's record of the same credit code is a 404 to it, and "
    "posting that code creates the bank's own record). A loan freezes the facts of the lending "
    "bank's record in force on its start date. Fiscal and auditor keys read every bank's records "
    "in their region; insurer, guarantor and pool keys read the records of the loans of their "
    "programmes; admin keys read all. Enterprises are counted once per credit code across banks.")

blp = Blueprint("borrowers", __name__, url_prefix="/v1/borrowers",
                description="Borrowers (enterprises) in each bank's customer file, and their SME class. " + FILE_RULE)


class BorrowerIn(RequestSchema):
    credit_code = CreditCode(required=True)
    name = Text(200, required=True)
    region = Region(required=True)
    industry = Choice(INDUSTRIES, required=True)
    employees = Integer(low=0, high=parties.MAX_EMPLOYEES, required=True)
    revenue = Money(required=True, metadata={"description": "operating revenue, yuan"})
    total_assets = Money(required=True, metadata={"description": "total assets, yuan"})
    private = Boolean(required=True, metadata={"description": "privately owned (not "
                                                              "state-controlled)"})
    as_of = Day(metadata={"description": "the day these facts are stated for (e.g. the balance sheet's "
                                         "date); default today, never in the future. A loan freezes the "
                                         "version in force on its start date."})
    bank = Code(metadata={"description": "admin keys only (required for them): the code of the "
                                         "bank whose file this record is in. Bank keys post to "
                                         "their own file and must not send it."})


class BorrowerOut(Output):
    id = fields.Integer()
    bank = fields.String(metadata={"description": "the bank whose customer file holds this record"})
    credit_code = fields.String()
    name = fields.String()
    region = fields.String()
    industry = fields.String()
    employees = fields.Integer()
    revenue = Money(attribute="revenue_fen")
    total_assets = Money(attribute="total_assets_fen")
    private = fields.Boolean()
    as_of = fields.Date(metadata={"description": "the day the record's current facts are stated for"})
    size_class = fields.String(metadata={"description": "micro, small, medium or large"})
    sme = fields.Boolean()
    size_standard = fields.String(metadata={"example": "MIIT-2011-300"})


class BorrowerQuery(RequestSchema):
    bank = Code(metadata={"description": "the bank whose record to show, for readers that see "
                                                  "several banks' records of the code (fiscal, auditor, "
                                                  "party and admin keys); required when there are several"})


def render(borrower: parties.Borrower) -> dict:
    return {"id": borrower.id, "bank": borrower.bank, **vars(borrower.facts), "as_of": borrower.as_of,
            "size_class": borrower.size_class, "sme": borrower.sme, "size_standard": borrower.size_standard}


def _file_of(data: dict) -> int:
    """The bank whose file the caller writes to: a bank key's own; an admin names it."""
    who = principal()
    if who.role == "bank":
        if "bank" in data:
            raise Invalid.field("bank", "a bank key posts to its own customer file; omit bank")
        return who.institution_id
    if "bank" not in data:
        raise Invalid.field("bank", "an admin key names the bank whose customer file this record is in")
    return parties.bank_named(tx(), data["bank"])


@blp.route("")
class Borrowers(MethodView):
    @require("bank", "admin")
    @write("optional")
    @blp.arguments(BorrowerIn())
    @blp.response(201, BorrowerOut, description="Created in the bank's customer file")
    @blp.alt_response(200, schema=BorrowerOut, description="Facts recorded on the bank's existing record; "
                      "the body is the record as it stands (its current facts are those of the latest as_of)")
    def post(self, data):
        """Record a borrower's facts in a bank's customer file.

        Posting a credit code the bank already holds adds a version of its facts (kept with its
        `as_of`); the record's current facts become these unless a later `as_of` is already
        recorded. Loans keep the facts they froze."""
        bank_id = _file_of(data)
        facts = parties.BorrowerFacts(data["credit_code"], data["name"], data["region"], data["industry"],
                                      data["employees"], data["revenue"], data["total_assets"], data["private"])
        borrower, created = parties.upsert_borrower(tx(), bank_id, facts, as_of=data.get("as_of"),
                                                    actor_key_id=principal().key_id)
        return render(borrower), 201 if created else 200, {"Location": f"/v1/borrowers/{borrower.facts.credit_code}"}


@blp.route("/<credit_code>")
@blp.arguments(BorrowerQuery, location="query")
@blp.response(200, BorrowerOut)
@require(*ANY_ROLE)
def get_borrower(args, credit_code):
    """One bank's record of an enterprise, as the caller may see it.

    A bank key sees its own record (another bank's is a 404). Readers that see several banks'
    records of the code choose one with `?bank=`; without it, several records are a 422 naming
    the banks."""
    with read() as conn:
        return render(parties.get_borrower(conn, credit_code, read_scope().borrower_condition(), args.get("bank")))
