"""Classification networks: litvision's own (SmallCNN, LeNet-5, AlexNet), torchvision's and timm's."""
