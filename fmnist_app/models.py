"""The model registry: MODELS[name] builds a keras.Model from (28, 28, 1) raw pixels to 10 logits.

The first five are the architectures of the seed study (parameter counts in its table);
`fastnet` is ours, a small ResNet-9-style net chosen for throughput on 2 CPU cores.
Every model scales 0..255 pixels to 0..1 itself, uses batch norm + ReLU, and ends in
two fully connected layers with 128 hidden units; logits stay float32 under mixed precision.
"""

from fmnist_app.dataset import IMAGE_SIZE, NUM_CLASSES
from fmnist_app.tf_quiet import keras

layers = keras.layers

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
LOGITS_NAME = "logits"             # every model's last layer


def conv_bn(x, filters, kernel, strides=1, padding="same", relu=True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    # momentum 0.9 (not Keras' 0.99): inference statistics settle within a few hundred
    # steps, so short runs and early evaluations are not skewed by the initial values.
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.ReLU()(x) if relu else x


def classifier_head(x, flatten=True):
    x = layers.Flatten()(x) if flatten else layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    return layers.Dense(NUM_CLASSES, dtype="float32", name=LOGITS_NAME)(x)


# --------------------------------------------------------------------------- seed models

def simple_model_1(x):
    x = conv_bn(x, 8, 3, padding="valid")
    x = conv_bn(x, 16, 3, padding="valid")
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = conv_bn(x, 32, 3, padding="valid")
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = conv_bn(x, 32, 3)
    return classifier_head(x)


def simple_model_2(x):
    for filters, kernel in ((16, 7), (32, 7), (64, 7), (64, 5), (128, 3)):
        x = conv_bn(x, filters, kernel, padding="valid")
    return classifier_head(x)


def inception_branches(x, f):
    """The 1x1, 1x1->3x3 and 1x1->3x3->3x3 branches shared by the Inception blocks."""
    return [conv_bn(x, f, 1),
            conv_bn(conv_bn(x, f, 1), f, 3),
            conv_bn(conv_bn(conv_bn(x, f, 1), f, 3), f, 3)]


def inception_a(x, filters):
    """Four parallel branches (1x1 / 3x3 / double 3x3 / pool), filters//4 each."""
    pool = conv_bn(layers.AveragePooling2D(3, 1, padding="same")(x), filters // 4, 1)
    return layers.Concatenate()([*inception_branches(x, filters // 4), pool])


def reduction_a(x, filters):
    """Halve the resolution: strided 3x3, strided double 3x3 and max-pool side by side.

    The two conv branches give filters//2 channels each; the pool passes the input through.
    """
    b1 = conv_bn(x, filters // 2, 3, strides=2, padding="valid")
    b2 = conv_bn(conv_bn(conv_bn(x, filters // 4, 1), filters // 4, 3), filters // 2, 3,
                 strides=2, padding="valid")
    b3 = layers.MaxPooling2D(3, 2, padding="valid")(x)
    return layers.Concatenate()([b1, b2, b3])


def inception(x):
    x = conv_bn(x, 16, 3, padding="valid")
    x = conv_bn(x, 16, 3, padding="valid")
    x = inception_a(x, 64)
    x = reduction_a(x, 96)
    x = reduction_a(x, 96)
    x = conv_bn(x, 48, 1)
    return classifier_head(x)


def bottleneck(x, filters, project):
    """ResNet block 1x1 -> 3x3 -> 1x1; `project` adds a 1x1 shortcut (conv block)."""
    shortcut = conv_bn(x, filters, 1, relu=False) if project else x
    y = conv_bn(x, filters, 1)
    y = conv_bn(y, filters, 3)
    y = conv_bn(y, filters, 1, relu=False)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def resnet(x):
    x = conv_bn(x, 16, 3, padding="valid")
    x = conv_bn(x, 32, 3, padding="valid")
    for filters in (64, 128):
        x = bottleneck(x, filters, project=True)
        x = bottleneck(x, filters, project=False)
        x = bottleneck(x, filters, project=False)
        x = layers.MaxPooling2D(3, 2, padding="same")(x)
    return classifier_head(x)


def inception_resnet_block(x, filters):
    """Inception branches summed back onto the input through a linear 1x1 (residual)."""
    branches = layers.Concatenate()(inception_branches(x, filters // 4))
    mixed = conv_bn(branches, x.shape[-1], 1, relu=False)
    return layers.ReLU()(layers.Add()([x, mixed]))


def inception_resnet(x):
    x = conv_bn(x, 16, 3, padding="valid")
    x = conv_bn(x, 64, 3, padding="valid")
    x = inception_resnet_block(x, 64)
    x = inception_resnet_block(x, 64)
    x = reduction_a(x, 96)
    x = inception_resnet_block(x, 96)
    x = inception_resnet_block(x, 96)
    x = reduction_a(x, 96)
    return classifier_head(x)


# --------------------------------------------------------------------------- our models

def residual(x, filters):
    """Two 3x3 conv-bn-relu layers added back onto the input (ResNet-9 style)."""
    y = conv_bn(conv_bn(x, filters, 3), filters, 3)
    return layers.Add()([x, y])


def fastnet(x, widths=(64, 128, 256), prep=True):
    """ResNet-9-style net: prep conv, then conv+pool (+residual) stages at 28, 14, 7.

    Most compute sits at 14x14 and 7x7, where 2 CPU cores are efficient; global
    average pooling keeps the head small.
    """
    if prep:
        x = conv_bn(x, widths[0] // 2, 3)
    x = layers.MaxPooling2D(2)(conv_bn(x, widths[0], 3))       # 28 -> 14
    x = residual(x, widths[0])
    x = layers.MaxPooling2D(2)(conv_bn(x, widths[1], 3))       # 14 -> 7
    x = residual(x, widths[1])
    x = layers.MaxPooling2D(2, padding="same")(conv_bn(x, widths[2], 3))  # 7 -> 4
    return classifier_head(x, flatten=False)


def fastnet_small(x):
    """Half-width fastnet: the fast recipe's model."""
    return fastnet(x, widths=(32, 64, 128))


def fastnet_lean(x):
    """fastnet_small without the prep conv, for the quick recipe: at 28x28 with few channels
    that conv costs far more time than its share of the arithmetic (README, Time to accuracy)."""
    return fastnet(x, widths=(32, 64, 128), prep=False)


def fastnet_lean_wide(x):
    """fastnet_lean with 1.5x the channels after the first pooling (96, 192): twice the
    parameters, all in the 14x14 and 7x7 layers: 1.7x the arithmetic at 0.75x the training
    speed (README, Time to accuracy)."""
    return fastnet(x, widths=(32, 96, 192), prep=False)


MODELS = {
    "simple_model_1": simple_model_1,
    "simple_model_2": simple_model_2,
    "inception": inception,
    "resnet": resnet,
    "inception_resnet": inception_resnet,
    "fastnet": fastnet,
    "fastnet_small": fastnet_small,
    "fastnet_lean": fastnet_lean,
    "fastnet_lean_wide": fastnet_lean_wide,
}


def members(model):
    """The networks of an ensemble (create_model with members > 1), else [model]."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]


def conv_and_dense_layers(network):
    """The layers with learnt weights other than batch norm, in model order (what
    FREEZE_LAYERS counts, in each member of an ensemble)."""
    return [layer for layer in network.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


def _joined(inputs, networks):
    """(members' last hidden layers side by side, mean of their logits) for `inputs`; each
    network outputs (hidden, logits)."""
    outputs = [network(inputs) for network in networks]
    features = layers.Concatenate()([hidden for hidden, _ in outputs])
    logits = layers.Average(dtype="float32", name=LOGITS_NAME)([out for _, out in outputs])
    return features, logits


def features_and_logits(model, name=None):
    """A model with the same input and two outputs: the last hidden layer (of an ensemble,
    its members' side by side) and the logits."""
    networks = members(model)
    if networks == [model]:
        return keras.Model(model.input, [model.get_layer(LOGITS_NAME).input, model.output],
                           name=name)
    return keras.Model(model.input, list(_joined(model.input, networks)), name=name)


def ensemble(networks, name):
    """One model whose logits are the mean of `networks`' logits (each a registered model,
    possibly trained). Networks trained apart make partly different mistakes, and their
    mean cancels some of them; the shipped model is two fastnets (README, Results)."""
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    # The member names are part of every ensemble's weights file: keep them.
    wrapped = [features_and_logits(network, name=f"member_{index}")
               for index, network in enumerate(networks)]
    return keras.Model(inputs, _joined(inputs, wrapped)[1], name=f"{name}_x{len(networks)}")


def create_model(name, members=1):
    """Build registered model `name` (or an ensemble of `members` of it, logits averaged);
    raw 0..255 pixels in, 10 logits out."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    if members > 1:
        return ensemble([create_model(name) for _ in range(members)], name)
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = layers.Rescaling(1.0 / 255)(inputs)
    return keras.Model(inputs, MODELS[name](x), name=name)
