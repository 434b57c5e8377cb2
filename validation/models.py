# Models arrive with the issue that fills this app (see DESIGN.md).
