"""audit schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('kommune_nr', sa.String(length=4), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('name', name=op.f('uq_api_token_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_table('party',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('her_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('orgnr', sa.String(length=9), nullable=True),
    sa.Column('plaintext_allowed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party')),
    sa.UniqueConstraint('her_id', name=op.f('uq_party_her_id'))
    )
    op.create_table('access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('token_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('resource', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('kommune_nr', sa.String(length=4), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['token_id'], ['api_token.id'], name=op.f('fk_access_log_token_id_api_token'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_log_at'), ['at'], unique=False)

    op.create_table('message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.Column('content_type', sa.String(length=1000), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('raw_ref', sa.String(length=500), nullable=True),
    sa.Column('ebms_message_id', sa.String(length=500), nullable=True),
    sa.Column('conversation_id', sa.String(length=500), nullable=True),
    sa.Column('ref_to_message_id', sa.String(length=500), nullable=True),
    sa.Column('cpa_id', sa.String(length=200), nullable=True),
    sa.Column('service', sa.String(length=200), nullable=True),
    sa.Column('action', sa.String(length=200), nullable=True),
    sa.Column('from_party_id', sa.String(length=100), nullable=True),
    sa.Column('to_party_id', sa.String(length=100), nullable=True),
    sa.Column('sender_party_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('environment', sa.String(length=20), nullable=True),
    sa.Column('msghead_msg_id', sa.String(length=200), nullable=True),
    sa.Column('msghead_type', sa.String(length=50), nullable=True),
    sa.Column('kommune_nr', sa.String(length=4), nullable=True),
    sa.Column('payload_bytes', sa.BigInteger(), nullable=True),
    sa.Column('notification_count', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['sender_party_id'], ['party.id'], name=op.f('fk_message_sender_party_id_party'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message'))
    )
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_ebms_message_id'), ['ebms_message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_environment'), ['environment'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_kommune_nr'), ['kommune_nr'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_msghead_msg_id'), ['msghead_msg_id'], unique=False)
        batch_op.create_index('ix_message_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_message_sender', ['from_party_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_sender_party_id'), ['sender_party_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_status'), ['status'], unique=False)

    op.create_table('party_certificate',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('party_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('usage', sa.String(length=20), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_party_certificate_party_id_party'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_certificate')),
    sa.UniqueConstraint('party_id', 'usage', 'sha256', name=op.f('uq_party_certificate_party_id_usage_sha256'))
    )
    with op.batch_alter_table('party_certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_certificate_party_id'), ['party_id'], unique=False)

    op.create_table('party_contact',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('party_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_party_contact_party_id_party'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_contact')),
    sa.UniqueConstraint('party_id', 'email', 'role', name=op.f('uq_party_contact_party_id_email_role'))
    )
    with op.batch_alter_table('party_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_contact_party_id'), ['party_id'], unique=False)

    op.create_table('party_cpa',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('party_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cpa_id', sa.String(length=200), nullable=False),
    sa.Column('service_actions', sa.JSON(), nullable=False),
    sa.Column('requires_signing', sa.Boolean(), nullable=False),
    sa.Column('requires_encryption', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_party_cpa_party_id_party'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_cpa')),
    sa.UniqueConstraint('party_id', 'cpa_id', name=op.f('uq_party_cpa_party_id_cpa_id'))
    )
    with op.batch_alter_table('party_cpa', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_cpa_party_id'), ['party_id'], unique=False)

    op.create_table('party_kommune',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('party_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kommune_nr', sa.String(length=4), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], name=op.f('fk_party_kommune_party_id_party'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_kommune')),
    sa.UniqueConstraint('party_id', 'kommune_nr', name=op.f('uq_party_kommune_party_id_kommune_nr'))
    )
    with op.batch_alter_table('party_kommune', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_kommune_kommune_nr'), ['kommune_nr'], unique=False)
        batch_op.create_index(batch_op.f('ix_party_kommune_party_id'), ['party_id'], unique=False)

    op.create_table('finding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rule_id', sa.String(length=60), nullable=False),
    sa.Column('layer', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('consequence', sa.String(length=30), nullable=False),
    sa.Column('apprec_code', sa.String(length=10), nullable=True),
    sa.Column('location', sa.String(length=500), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('notification_guid', sa.String(length=36), nullable=True),
    sa.Column('bruker_nr', sa.String(length=100), nullable=True),
    sa.Column('fid', sa.String(length=11), nullable=True),
    sa.Column('kommune_nr', sa.String(length=4), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_finding_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finding'))
    )
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.create_index('ix_finding_kommune_rule', ['kommune_nr', 'rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_finding_message_id'), ['message_id'], unique=False)

    op.create_table('message_dedup',
    sa.Column('from_party_id', sa.String(length=100), nullable=False),
    sa.Column('ebms_message_id', sa.String(length=500), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_dedup_message_id_message')),
    sa.PrimaryKeyConstraint('from_party_id', 'ebms_message_id', name=op.f('pk_message_dedup')),
    sa.UniqueConstraint('message_id', name=op.f('uq_message_dedup_message_id'))
    )
    op.create_table('message_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_event_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_event'))
    )
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_event_message_id'), ['message_id'], unique=False)

    op.create_table('notification_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_notification_outbox_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox'))
    )
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_notification_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_outbox_message_id'), ['message_id'], unique=False)

    op.create_table('receipt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reply_ebms_message_id', sa.String(length=500), nullable=True),
    sa.Column('content_type', sa.String(length=1000), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('apprec_xml', sa.LargeBinary(), nullable=True),
    sa.Column('apprec_id', sa.String(length=100), nullable=True),
    sa.Column('apprec_status', sa.String(length=2), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_receipt_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipt')),
    sa.UniqueConstraint('message_id', name=op.f('uq_receipt_message_id'))
    )


def downgrade() -> None:
    op.drop_table('receipt')
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_outbox_message_id'))
        batch_op.drop_index('ix_notification_outbox_due')

    op.drop_table('notification_outbox')
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_event_message_id'))

    op.drop_table('message_event')
    op.drop_table('message_dedup')
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_finding_message_id'))
        batch_op.drop_index('ix_finding_kommune_rule')

    op.drop_table('finding')
    with op.batch_alter_table('party_kommune', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_kommune_party_id'))
        batch_op.drop_index(batch_op.f('ix_party_kommune_kommune_nr'))

    op.drop_table('party_kommune')
    with op.batch_alter_table('party_cpa', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_cpa_party_id'))

    op.drop_table('party_cpa')
    with op.batch_alter_table('party_contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_contact_party_id'))

    op.drop_table('party_contact')
    with op.batch_alter_table('party_certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_certificate_party_id'))

    op.drop_table('party_certificate')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_status'))
        batch_op.drop_index(batch_op.f('ix_message_sha256'))
        batch_op.drop_index(batch_op.f('ix_message_sender_party_id'))
        batch_op.drop_index('ix_message_sender')
        batch_op.drop_index('ix_message_received_at')
        batch_op.drop_index(batch_op.f('ix_message_msghead_msg_id'))
        batch_op.drop_index(batch_op.f('ix_message_kommune_nr'))
        batch_op.drop_index(batch_op.f('ix_message_environment'))
        batch_op.drop_index(batch_op.f('ix_message_ebms_message_id'))

    op.drop_table('message')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_log_at'))

    op.drop_table('access_log')
    op.drop_table('party')
    op.drop_table('api_token')
