"""iplos history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('iplos_bruker',
    sa.Column('kommune_nr', sa.String(length=4), nullable=False),
    sa.Column('bruker_nr', sa.String(length=100), nullable=False),
    sa.Column('fid', sa.String(length=11), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kommune_nr', 'bruker_nr', name=op.f('pk_iplos_bruker'))
    )
    op.create_table('iplos_kommune_state',
    sa.Column('kommune_nr', sa.String(length=4), nullable=False),
    sa.Column('last_lopenr', sa.BigInteger(), nullable=True),
    sa.Column('last_guid', sa.String(length=36), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kommune_nr', name=op.f('pk_iplos_kommune_state'))
    )
    op.create_table('iplos_notification',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kommune_nr', sa.String(length=4), nullable=False),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=1), nullable=False),
    sa.Column('lopenr', sa.BigInteger(), nullable=True),
    sa.Column('forrige_guid', sa.String(length=36), nullable=False),
    sa.Column('ref', sa.String(length=36), nullable=True),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('tjeneste_type', sa.String(length=4), nullable=False),
    sa.Column('hendelse_dato', sa.String(length=10), nullable=False),
    sa.Column('bruker_nr', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_iplos_notification_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iplos_notification')),
    sa.UniqueConstraint('kommune_nr', 'guid', name=op.f('uq_iplos_notification_kommune_nr_guid'))
    )
    with op.batch_alter_table('iplos_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iplos_notification_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('iplos_notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iplos_notification_message_id'))

    op.drop_table('iplos_notification')
    op.drop_table('iplos_kommune_state')
    op.drop_table('iplos_bruker')
