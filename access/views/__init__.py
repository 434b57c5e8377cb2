"""The portal pages of Just-In-Time access, one module per area: the technician's grants
(``grants``) and requests (``requests``), approvers' queue (``approvals``) and org admins'
pages per organisation (``org_admin``).

Views parse with ``access.forms``, call one service or selector, and render or redirect.
Every object resolves through ``access.selectors`` (another organisation's row is a 404);
the services decide who may act and say why not (``AccessError``), which the views show.
"""
