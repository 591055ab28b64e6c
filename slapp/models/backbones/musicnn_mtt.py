"""musicnn trained on MagnaTagATune: the same network and input as
:mod:`slapp.models.backbones.musicnn_msd`, the wheel's other musicnn checkpoint."""

from slapp.models.backbones.musicnn_msd import Musicnn

BACKBONE = Musicnn("musicnn-mtt", "MTT_musicnn")
