"""Pure tensor functions of the PPO stage: no Lightning imports here (see docs/algorithm.md)."""

from reft_lightning.rl.advantages import broadcast_to_tokens, group_advantages
from reft_lightning.rl.estimators import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimator,
    AdvantageInputs,
    advantage_estimator,
    register_advantage,
)
from reft_lightning.rl.gae import compute_gae, masked_mean, masked_var, masked_whiten
from reft_lightning.rl.kl import AdaptiveKLController, FixedKLController, KLController, kl_estimate
from reft_lightning.rl.logprobs import masked_entropy, token_entropy, token_logprobs
from reft_lightning.rl.losses import (
    PolicyLossStats,
    ValueLossStats,
    ppo_policy_loss,
    ppo_value_loss,
    sequence_mean,
)
from reft_lightning.rl.shaping import last_response_index, shape_rewards

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AdaptiveKLController",
    "AdvantageEstimator",
    "AdvantageInputs",
    "FixedKLController",
    "KLController",
    "PolicyLossStats",
    "ValueLossStats",
    "advantage_estimator",
    "broadcast_to_tokens",
    "compute_gae",
    "group_advantages",
    "kl_estimate",
    "last_response_index",
    "masked_entropy",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "ppo_policy_loss",
    "ppo_value_loss",
    "register_advantage",
    "sequence_mean",
    "shape_rewards",
    "token_entropy",
    "token_logprobs",
]
