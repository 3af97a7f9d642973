"""Production language packs: the catalogue, download, install and verify (`outdial models`)."""
