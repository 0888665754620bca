"""IPLOS over AMQP 1.0 through NHN's Tjenestebuss (RabbitMQ), issue 24.

The transport half: Helsenorge message properties (`envelope`), error conditions
(`conditions`), the inbox that is committed before the broker's accept (`repository`,
`link`), the processing loop with back-off against the intake core's port (`core_port`,
`processor`) and the outbox sender (`sender`). `setup` declares the queues in dev.
"""
