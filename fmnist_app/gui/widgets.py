"""The window's display pieces. They only paint what they are given."""

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QSizePolicy, QWidget

GUIDE_BLUE = QColor(30, 110, 255)


class FrameView(QWidget):
    """The camera picture scaled to fit, the blue guide box on top, and a notice line."""

    def __init__(self):
        super().__init__()
        self.setMinimumSize(480, 360)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image = QImage()
        self._box = None
        self.notice = ""

    def show_frame(self, image, box):
        self._image, self._box = image, box
        self.update()

    def set_notice(self, text):
        """Text drawn over the picture (or alone when there is none); "" removes it."""
        self.notice = text
        self.update()

    def has_frame(self):
        return not self._image.isNull()

    def paintEvent(self, event):
        # The painter must end before paintEvent returns; `with` ends it even on an error.
        with QPainter(self) as painter:
            painter.fillRect(self.rect(), QColor(32, 32, 32))
            if not self._image.isNull():
                self._paint_frame(painter)
            if self.notice:
                self._paint_notice(painter)

    def _paint_frame(self, painter):
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        left = (self.width() - size.width()) / 2
        top = (self.height() - size.height()) / 2
        scale = size.width() / self._image.width()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(left, top, size.width(), size.height()), self._image)
        if self._box is not None:
            painter.setPen(QPen(GUIDE_BLUE, 3))
            painter.drawRect(QRectF(left + self._box.x * scale, top + self._box.y * scale,
                                    self._box.side * scale, self._box.side * scale))

    def _paint_notice(self, painter):
        band = QRectF(0, self.height() - 64, self.width(), 64) if self.has_frame() \
            else QRectF(self.rect())
        painter.fillRect(band, QColor(0, 0, 0, 170))
        painter.setPen(QColor(255, 220, 120))
        painter.drawText(band.adjusted(12, 6, -12, -6),
                         Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.notice)


class InputPreview(QLabel):
    """The exact 28x28 model input, enlarged with square pixels (no smoothing)."""

    def __init__(self, side=168):
        super().__init__()
        self.side = side
        self.setFixedSize(QSize(side, side))
        self.setStyleSheet("background: black; border: 1px solid #555;")
        self.image = QImage()

    def show_input(self, image):
        self.image = image
        self.setPixmap(QPixmap.fromImage(image).scaled(
            self.side, self.side, Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.FastTransformation))


class TopBars(QWidget):
    """Rows of class name and probability bar: the top three, or all ten classes."""

    def __init__(self, rows=10, shown=3):
        super().__init__()
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.names, self.bars = [], []
        for row in range(rows):
            name = QLabel("-")
            name.setMinimumWidth(90)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setFormat("")
            layout.addWidget(name, row, 0)
            layout.addWidget(bar, row, 1)
            self.names.append(name)
            self.bars.append(bar)
        self.set_rows(shown)

    def set_rows(self, count):
        for row, (name, bar) in enumerate(zip(self.names, self.bars)):
            name.setVisible(row < count)
            bar.setVisible(row < count)

    def show_top(self, top):
        """top: [(class, probability)] in display order; missing rows are blanked."""
        for row, (name, bar) in enumerate(zip(self.names, self.bars)):
            if row < len(top):
                name.setText(top[row][0])
                bar.setValue(round(1000 * top[row][1]))
                bar.setFormat(f"{100 * top[row][1]:.0f}%")
            else:
                name.setText("-")
                bar.setValue(0)
                bar.setFormat("")


def big_font(points=26):
    font = QFont()
    font.setPointSize(points)
    font.setBold(True)
    return font
