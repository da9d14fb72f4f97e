"""Learning the score: networks, parametrizations, denoising score matching, training with exact
resume, data, and the score-error meter."""

from .data import Data, load_data
from .loss import dsm_constant, dsm_loss, sample_times, time_weights
from .meter import ScoreErrorProfile, score_error, standardized_target
from .model import ScoreModel, Standardizer, box_score, data_box
from .networks import MLP, UNet, UNet8
from .train import TrainConfig, TrainInfo, TrainResult, load_model, read_checkpoint, recipe, train

__all__ = ["Data", "load_data", "dsm_loss", "dsm_constant", "sample_times", "time_weights", "ScoreModel",
           "Standardizer", "MLP", "UNet", "UNet8", "TrainConfig", "TrainInfo", "TrainResult", "train", "recipe", "load_model",
           "read_checkpoint", "ScoreErrorProfile", "score_error", "standardized_target", "box_score", "data_box"]
