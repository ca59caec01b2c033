-- pgbench custom script (bench/ceiling.py): the five-statement ledger transaction of issue 11,
-- the machine's ceiling for one money event: an entry, its two postings, two balance updates.
-- The two accounts are updated in id order so concurrent clients never deadlock.
\set a random(1, :accounts)
\set b random(1, :accounts)
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set amount random(1, 100000000)
BEGIN;
INSERT INTO pgb_entries (kind, effective_on, recorded_at) VALUES ('bench', CURRENT_DATE, now()) RETURNING id AS entry_id \gset
INSERT INTO pgb_postings (entry_id, account_id, amount_fen) VALUES (:entry_id, :lo, (:amount)::bigint);
INSERT INTO pgb_postings (entry_id, account_id, amount_fen) VALUES (:entry_id, :hi, -(:amount)::bigint);
UPDATE pgb_balances SET balance_fen = balance_fen + (:amount)::bigint WHERE account_id = :lo;
UPDATE pgb_balances SET balance_fen = balance_fen - (:amount)::bigint WHERE account_id = :hi;
END;
