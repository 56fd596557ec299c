"""Inbound webhooks: real-time lead intake from ad platforms that never loses a lead.

``app`` (the Flask app) verifies each request (``verify``) and cuts it into events
(``providers``), ``intake`` writes them durably before the 200, ``worker`` turns stored events
into CRM leads and touchpoints, ``events`` owns the table's state changes, ``admin`` the admin
API, ``server`` runs it all inside ``crm-roi serve``; ``cli`` is ``crm-roi webhooks``.
"""
