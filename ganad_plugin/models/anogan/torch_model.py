"""AnoGAN's networks on image patches: generator G, discriminator D, and f-AnoGAN's encoder E; the latent search.

A patch x is explained by a latent z: it starts at E(x) (f-AnoGAN's encoder) or at random (the paper), then
``latent_search_steps`` Adam steps lower L(z) = (1 - lambda) * ||x - G(z)||_1 + lambda * ||f_D(x) - f_D(G(z))||_1
for every patch of every image at once (one [N, nz] latent tensor, one optimiser). The paper's score
(1 - lambda) ||x - G(z)||_1 + lambda ||f_D(x) - f_D(G(z))||_1 becomes the ``residual`` and ``distance`` evidence maps,
beside the feature memory of E's features (``PatchAnomalyModel``). With no search steps the model is one forward
pass, and exports.
"""

from __future__ import annotations

import torch
from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, init_dcgan_weights
from ganad_plugin.models.components.patch_model import PatchAnomalyModel
from ganad_plugin.models.components.settings import Evidence, PatchNetwork

from .loss import search_loss


class AnoganModel(PatchAnomalyModel):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Args:
        network, evidence, channels: as ``PatchAnomalyModel``.
        latent_search_steps: Gamma, Adam steps on z per test batch (0: E(x) is used as it is).
        latent_search_lr: the search's Adam learning rate.
        latent_search_lambda: lambda of the search loss L(z).
        encoder_start: start the search from E(x) (f-AnoGAN) instead of a random z (the paper).
    """

    def __init__(
        self,
        *,
        network: PatchNetwork = PatchNetwork(latent_dim=64),
        evidence: Evidence = Evidence(),
        latent_search_steps: int = 0, latent_search_lr: float = 0.05, latent_search_lambda: float = 0.1,
        encoder_start: bool = True,
        channels: int = 3,
    ) -> None:
        super().__init__(network=network, evidence=evidence, channels=channels)
        self.latent_search_steps = latent_search_steps
        self.latent_search_lr = latent_search_lr
        self.latent_search_lambda = latent_search_lambda
        self.encoder_start = encoder_start
        shape = (network.patch_size, channels, network.n_features, network.latent_dim)
        self.generator = DcganDecoder(*shape)
        self.discriminator = DcganDiscriminator(*shape[:3], spectral_norm=True)
        self.encoder = DcganEncoder(*shape)
        for module in (self.generator, self.discriminator, self.encoder):
            module.apply(init_dcgan_weights)

    def discriminator_features(self, patches: torch.Tensor) -> torch.Tensor:
        return self.discriminator(patches)[1]

    def feature_encoder(self) -> DcganEncoder:
        return self.encoder

    def start_latent(self, patches: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.encoder_start:
            return codes
        return torch.randn(patches.shape[0], self.latent_dim, 1, 1, device=patches.device, dtype=patches.dtype)

    def search_latent(self, patches: torch.Tensor, latent: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Batched latent search: ``steps`` (default ``latent_search_steps``) Adam steps on L(z), all patches at
        once, G and D frozen. Works under ``torch.no_grad`` / ``inference_mode`` (anomalib's test step)."""
        steps = self.latent_search_steps if steps is None else steps
        if steps <= 0:
            return latent
        frozen = [p for p in (*self.generator.parameters(), *self.discriminator.parameters()) if p.requires_grad]
        with torch.inference_mode(False), torch.enable_grad():
            # inference tensors cannot take part in autograd: work on ordinary copies
            patches, latent = patches.clone(), latent.detach().clone().requires_grad_(True)
            features = self.discriminator_features(patches).detach()
            optimiser = torch.optim.Adam([latent], lr=self.latent_search_lr)
            for parameter in frozen:
                parameter.requires_grad_(False)
            try:
                for _ in range(steps):
                    reconstructions = self.generator(latent)
                    loss = search_loss(
                        patches, reconstructions, features, self.discriminator_features(reconstructions),
                        self.latent_search_lambda,
                    )
                    optimiser.zero_grad(set_to_none=True)
                    loss.sum().backward()  # per-patch losses: each latent gets only its own gradient
                    optimiser.step()
            finally:
                for parameter in frozen:
                    parameter.requires_grad_(True)
        return latent.detach()

    def patch_evidence(
        self, patches: torch.Tensor, with_distance: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(G(z_Gamma), the feature distance ||f_D(x) - f_D(G(z_Gamma))||_1 per patch, or None)."""
        codes = self.encoder(patches)
        latent = self.search_latent(patches, self.start_latent(patches, codes))
        reconstructions = self.generator(latent)
        if not with_distance:
            return reconstructions, None
        feature_distance = (
            (self.discriminator_features(patches) - self.discriminator_features(reconstructions)).abs().mean(dim=(1, 2, 3))
        )
        return reconstructions, feature_distance

    def paper_image_score(
        self, inputs: torch.Tensor, reconstructions: torch.Tensor, distance: torch.Tensor
    ) -> torch.Tensor:
        """AnoGAN's A(x) = (1 - lambda) R(z_Gamma) + lambda D(z_Gamma): the residual ||x - G(z)||_1 and the
        discrimination loss ||f_D(x) - f_D(G(z))||_1, with the search's lambda."""
        return self.residual_and_distance(inputs, reconstructions, distance, self.latent_search_lambda)
