"""wav2sem: Wav2Sem (CVPR 2025) audio-semantic features as Hugging Face models.

Importing the package registers `wav2sem` and `wav2sem-fused` with `AutoConfig` / `AutoModel`, and marks the
classes for remote code, so `save_pretrained` also writes the model code and `auto_map`: a saved folder loads with
`AutoModel.from_pretrained(folder)` here, and with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel

from .configuration_animation import ANIMATION_DATASETS, AnimationConfig, AnimationDatasetInfo, get_animation_dataset
from .configuration_codetalker import CODETALKER_PRESETS, CODETALKER_VQVAE_PRESETS, CodeTalkerConfig, CodeTalkerVQVAEConfig
from .configuration_facediffuser import FACEDIFFUSER_PRESETS, FaceDiffuserConfig
from .configuration_faceformer import FACEFORMER_DATASETS, FACEFORMER_PRESETS, FaceFormerConfig
from .configuration_lgldm import LGLDM_PRESETS, LGLDMConfig
from .configuration_unitalker import UNITALKER_PRESETS, UNITALKER_SIZES, UniTalkerConfig
from .configuration_voca import VOCA_PRESETS, VOCAConfig
from .configuration_wav2sem import WAV2SEM_PRESETS, Wav2SemConfig, Wav2SemFusedConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel
from .modeling_codetalker import (
    CodeTalkerForAnimation,
    CodeTalkerOutput,
    CodeTalkerPreTrainedModel,
    CodeTalkerVQVAE,
    CodeTalkerVQVAEOutput,
)
from .modeling_facediffuser import FaceDiffuserForAnimation, FaceDiffuserOutput, FaceDiffuserPreTrainedModel
from .modeling_faceformer import FaceFormerForAnimation, FaceFormerOutput, FaceFormerPreTrainedModel
from .modeling_lgldm import LGLDMForAnimation, LGLDMOutput, LGLDMPreTrainedModel
from .modeling_unitalker import UniTalkerForAnimation, UniTalkerOutput, UniTalkerPreTrainedModel
from .modeling_voca import VOCAForAnimation, VOCAOutput
from .modeling_wav2sem import (
    Wav2SemFusedEncoder,
    Wav2SemFusedEncoderOutput,
    Wav2SemModel,
    Wav2SemModelOutput,
    Wav2SemPreTrainedModel,
)

__version__ = "0.1.0"


def _register_auto_classes():
    for config_class, model_class in (
        (Wav2SemConfig, Wav2SemModel),
        (Wav2SemFusedConfig, Wav2SemFusedEncoder),
        (FaceFormerConfig, FaceFormerForAnimation),
        (VOCAConfig, VOCAForAnimation),
        (CodeTalkerVQVAEConfig, CodeTalkerVQVAE),
        (CodeTalkerConfig, CodeTalkerForAnimation),
        (LGLDMConfig, LGLDMForAnimation),
        (FaceDiffuserConfig, FaceDiffuserForAnimation),
        (UniTalkerConfig, UniTalkerForAnimation),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModel")


_register_auto_classes()

__all__ = [
    "ANIMATION_DATASETS",
    "AnimationConfig",
    "AnimationDatasetInfo",
    "AnimationOutput",
    "AnimationPreTrainedModel",
    "CODETALKER_PRESETS",
    "CODETALKER_VQVAE_PRESETS",
    "CodeTalkerConfig",
    "CodeTalkerForAnimation",
    "CodeTalkerOutput",
    "CodeTalkerPreTrainedModel",
    "CodeTalkerVQVAE",
    "CodeTalkerVQVAEConfig",
    "CodeTalkerVQVAEOutput",
    "FACEDIFFUSER_PRESETS",
    "FaceDiffuserConfig",
    "FaceDiffuserForAnimation",
    "FaceDiffuserOutput",
    "FaceDiffuserPreTrainedModel",
    "FACEFORMER_DATASETS",
    "LGLDM_PRESETS",
    "LGLDMConfig",
    "LGLDMForAnimation",
    "LGLDMOutput",
    "LGLDMPreTrainedModel",
    "FACEFORMER_PRESETS",
    "FaceFormerConfig",
    "FaceFormerForAnimation",
    "FaceFormerOutput",
    "FaceFormerPreTrainedModel",
    "UNITALKER_PRESETS",
    "UNITALKER_SIZES",
    "UniTalkerConfig",
    "UniTalkerForAnimation",
    "UniTalkerOutput",
    "UniTalkerPreTrainedModel",
    "VOCA_PRESETS",
    "VOCAConfig",
    "VOCAForAnimation",
    "VOCAOutput",
    "WAV2SEM_PRESETS",
    "get_animation_dataset",
    "Wav2SemConfig",
    "Wav2SemFusedConfig",
    "Wav2SemFusedEncoder",
    "Wav2SemFusedEncoderOutput",
    "Wav2SemModel",
    "Wav2SemModelOutput",
    "Wav2SemPreTrainedModel",
]
