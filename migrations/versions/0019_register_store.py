"""The register store: melding, kontaktperson, melding_kommune, notifikasjon, hendelse,
episode and register_feed; identifiers sealed at rest in finding and iplos_bruker

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

Every attribute of every accepted notification is kept as sent (issue 19). `fid` columns now
hold a sealed token (AES-GCM, key outside the database) instead of the number, so they widen
to text; iplos_bruker is looked up by the fid's keyed hash. Values stored in clear before
this revision are sealed by `kpr-mottak db upgrade` (it needs the keys, which a migration
does not have); until then they are read as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(n, sa.Text(), nullable=True) for n in names]


def upgrade() -> None:
    op.create_table(
        "melding",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("kommune_nr", sa.String(4), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("apprec_id", sa.String(100), nullable=True),
        sa.Column("apprec_status", sa.String(1), nullable=True),
        sa.Column("feed_seq", sa.BigInteger(), nullable=True),
        *_text("versjon", "meldingstype", "leverandor", "navn_epj", "versjon_epj"),
        *_text("versjon_ut", "lokalident"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name="fk_melding_message_id_message", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_melding"),
        sa.UniqueConstraint("message_id", name="uq_melding_message_id"),
        sa.UniqueConstraint("environment", "feed_seq", name="uq_melding_environment_feed_seq"),
    )
    op.create_table(
        "kontaktperson",
        sa.Column("melding_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_text("kont_person", "meld_telefon", "meld_epost1", "meld_epost2"),
        *_text("type_kontaktperson", "type_kontaktperson_tolket"),
        sa.ForeignKeyConstraint(
            ["melding_id"],
            ["melding.id"],
            name="fk_kontaktperson_melding_id_melding",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("melding_id", "position", name="pk_kontaktperson"),
    )
    op.create_table(
        "melding_kommune",
        sa.Column("melding_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kommune_nr", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["melding_id"],
            ["melding.id"],
            name="fk_melding_kommune_melding_id_melding",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("melding_id", "position", name="pk_melding_kommune"),
    )
    op.create_table(
        "notifikasjon",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("melding_id", BigId, nullable=False),
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("kommune_nr", sa.String(4), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_text("status_notifikasjon", "notifikasjon_tid", "notifikasjon_guid"),
        *_text("notifikasjon_forrige_guid", "notifikasjon_lope_nr", "notifikasjon_ref"),
        sa.Column("notifikasjon_guid_tolket", sa.String(100), nullable=False),
        sa.Column("notifikasjon_ref_tolket", sa.String(100), nullable=True),
        sa.Column("notifikasjon_lope_nr_tolket", sa.BigInteger(), nullable=True),
        sa.Column("funn", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["melding_id"],
            ["melding.id"],
            name="fk_notifikasjon_melding_id_melding",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifikasjon"),
    )
    op.create_index("ix_notifikasjon_melding_id", "notifikasjon", ["melding_id"])
    op.create_index(
        "ix_notifikasjon_key",
        "notifikasjon",
        ["environment", "kommune_nr", "notifikasjon_guid_tolket"],
    )
    op.create_index(
        "ix_notifikasjon_ref", "notifikasjon", ["environment", "kommune_nr", "notifikasjon_ref_tolket"]
    )
    op.create_table(
        "hendelse",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("notifikasjon_id", BigId, nullable=False),
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("kommune_nr", sa.String(4), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("hendelse_type", sa.String(40), nullable=False),
        *_text("tjeneste_type", "hendelse_reg_tid", "tjeneste_org_nr", "hendelse_dato"),
        *_text("tjeneste_id", "hendelse_guid", "midlertidig_stopp_id", "pasient_guid"),
        *_text("bruker_nr", "fid"),
        sa.Column("fid_hmac", sa.String(64), nullable=True),
        *_text("type_id", "bydel"),
        sa.Column("hendelse_dato_tolket", sa.Date(), nullable=True),
        sa.Column("hendelse_guid_tolket", sa.String(100), nullable=True),
        sa.Column("type_id_tolket", sa.String(20), nullable=True),
        sa.ForeignKeyConstraint(
            ["notifikasjon_id"],
            ["notifikasjon.id"],
            name="fk_hendelse_notifikasjon_id_notifikasjon",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hendelse"),
    )
    op.create_index("ix_hendelse_notifikasjon_id", "hendelse", ["notifikasjon_id"])
    op.create_index(
        "ix_hendelse_episode", "hendelse", ["environment", "kommune_nr", "bruker_nr", "tjeneste_id"]
    )
    op.create_index(
        "ix_hendelse_guid", "hendelse", ["environment", "kommune_nr", "hendelse_guid_tolket"]
    )
    op.create_table(
        "episode",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("kommune_nr", sa.String(4), nullable=False),
        sa.Column("bruker_nr", sa.Text(), nullable=False),
        sa.Column("tjeneste_id", sa.Text(), nullable=False),
        sa.Column("fid_hmac", sa.String(64), nullable=True),
        sa.Column("tjeneste_type", sa.Text(), nullable=True),
        sa.Column("start_dato", sa.Date(), nullable=True),
        sa.Column("start_notifikasjon_guid", sa.String(100), nullable=True),
        sa.Column("slutt_dato", sa.Date(), nullable=True),
        sa.Column("slutt_notifikasjon_guid", sa.String(100), nullable=True),
        sa.Column("tjeneste_org_nr", sa.Text(), nullable=True),
        sa.Column("midlertidige_stopp", sa.JSON(), nullable=False),
        sa.Column("utforer_endringer", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_episode"),
        sa.UniqueConstraint(
            "environment",
            "kommune_nr",
            "bruker_nr",
            "tjeneste_id",
            name="uq_episode_environment_kommune_nr_bruker_nr_tjeneste_id",
        ),
    )
    op.create_index("ix_episode_fid_hmac", "episode", ["fid_hmac"])
    op.create_table(
        "register_feed",
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_seq", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_notifikasjon_id", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("environment", name="pk_register_feed"),
    )
    with op.batch_alter_table("finding") as batch:
        batch.alter_column("fid", type_=sa.Text(), existing_type=sa.String(11))
    op.drop_index("ix_iplos_bruker_fid", table_name="iplos_bruker")
    with op.batch_alter_table("iplos_bruker") as batch:
        batch.alter_column("fid", type_=sa.Text(), existing_type=sa.String(11))
        batch.add_column(sa.Column("fid_hmac", sa.String(64), nullable=True))
    op.create_index(
        "ix_iplos_bruker_fid_hmac", "iplos_bruker", ["environment", "kommune_nr", "fid_hmac"]
    )


def downgrade() -> None:
    # Sealed values do not fit the old width: the pairs and the findings' fids are dropped
    # (the history's pairs are rebuilt by later messages; findings keep everything else).
    op.drop_index("ix_iplos_bruker_fid_hmac", table_name="iplos_bruker")
    op.execute("DELETE FROM iplos_bruker")
    op.execute("UPDATE finding SET fid = NULL WHERE length(fid) > 11")
    with op.batch_alter_table("iplos_bruker") as batch:
        batch.drop_column("fid_hmac")
        batch.alter_column("fid", type_=sa.String(11), existing_type=sa.Text())
    op.create_index("ix_iplos_bruker_fid", "iplos_bruker", ["environment", "kommune_nr", "fid"])
    with op.batch_alter_table("finding") as batch:
        batch.alter_column("fid", type_=sa.String(11), existing_type=sa.Text())
    for table in (
        "register_feed",
        "episode",
        "hendelse",
        "notifikasjon",
        "melding_kommune",
        "kontaktperson",
        "melding",
    ):
        op.drop_table(table)
